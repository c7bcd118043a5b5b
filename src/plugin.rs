//! The collectd glue: registration, callbacks, and turning a finished
//! [`PortTable`] into value lists. Every callback catches panics so that none
//! can cross into collectd.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use collectd_plugin::bindings::{
    plugin_dispatch_values, plugin_register_config, plugin_register_init, plugin_register_read,
    plugin_register_shutdown, value_list_t, value_t,
};
use collectd_plugin::CollectdLoggerBuilder;
use log::{error, info, warn, LevelFilter};

use crate::config::{ConfigBuilder, KEYS};
use crate::procfs::Procfs;
use crate::source::Gatherer;
use crate::state::TcpState;
use crate::table::{Instance, PortTable};

const NAME: &CStr = c"tcpconns";

/// Options received so far; collectd calls the config callback before init.
static OPTIONS: Mutex<Option<ConfigBuilder>> = Mutex::new(None);
/// Everything a read needs, made at init.
static READER: Mutex<Option<Reader>> = Mutex::new(None);

struct Reader {
    table: PortTable,
    gatherer: Gatherer,
    noted_ignored: bool,
}

/// A poisoned lock only means an earlier callback panicked; the data is
/// still usable (the next read starts from zero).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a callback body, turning a panic into a logged error and `-1`.
fn guard(what: &str, body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!("internal error in {what}: {msg}");
            -1
        }
    }
}

/// collectd's entry point for `LoadPlugin tcpconns`.
#[no_mangle]
pub extern "C" fn module_register() {
    guard("module_register", || {
        // Fails only if a logger is already set in this process; keep it.
        let _ = CollectdLoggerBuilder::new()
            .filter_level(LevelFilter::Info)
            .format(|buf, record| write!(buf, "tcpconns plugin: {}", record.args()))
            .try_init();
        // collectd keeps the key pointers for the life of the process.
        let keys: &'static mut [*const c_char] = Box::leak(
            KEYS.iter()
                .filter_map(|k| CString::new(*k).ok())
                .map(|k| Box::leak(k.into_boxed_c_str()).as_ptr())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        // SAFETY: NAME and the keys are 'static NUL-terminated strings, the
        // callbacks are extern "C" functions with the signatures collectd
        // expects, and `keys.len()` is the length of the array passed.
        unsafe {
            plugin_register_config(
                NAME.as_ptr(),
                Some(config_callback),
                keys.as_mut_ptr(),
                keys.len() as c_int,
            );
            plugin_register_init(NAME.as_ptr(), Some(init_callback));
            plugin_register_read(NAME.as_ptr(), Some(read_callback));
            plugin_register_shutdown(NAME.as_ptr(), Some(shutdown_callback));
        }
        0
    });
}

unsafe extern "C" fn config_callback(key: *const c_char, value: *const c_char) -> c_int {
    if key.is_null() || value.is_null() {
        error!("collectd passed an empty option");
        return -1;
    }
    // SAFETY: collectd passes NUL-terminated strings that live for the call.
    let (key, value) = unsafe { (CStr::from_ptr(key), CStr::from_ptr(value)) };
    guard("config", || {
        let (key, value) = (key.to_string_lossy(), value.to_string_lossy());
        let mut options = lock(&OPTIONS);
        let options = options.get_or_insert_with(ConfigBuilder::default);
        let result = options.apply(&key, &value);
        for warning in options.take_warnings() {
            warn!("{warning}");
        }
        match result {
            Ok(()) => 0,
            Err(err) => {
                error!("{err}");
                -1
            }
        }
    })
}

unsafe extern "C" fn init_callback() -> c_int {
    guard("init", || {
        let config = lock(&OPTIONS)
            .get_or_insert_with(ConfigBuilder::default)
            .finish();
        *lock(&READER) = Some(Reader {
            table: PortTable::new(&config),
            gatherer: Gatherer::new(Procfs::default()),
            noted_ignored: false,
        });
        0
    })
}

unsafe extern "C" fn read_callback() -> c_int {
    guard("read", || {
        let mut reader = lock(&READER);
        let Some(reader) = reader.as_mut() else {
            error!("read called before init");
            return -1;
        };
        match reader.gatherer.read(&mut reader.table) {
            Ok(_) => {
                if reader.table.ignored() > 0 && !reader.noted_ignored {
                    info!(
                        "ignoring {} sockets in states outside 1..11",
                        reader.table.ignored()
                    );
                    reader.noted_ignored = true;
                }
                dispatch(&reader.table);
                0
            }
            Err(err) => {
                error!("reading sockets failed, nothing dispatched: {err}");
                -1
            }
        }
    })
}

unsafe extern "C" fn shutdown_callback() -> c_int {
    guard("shutdown", || {
        *lock(&READER) = None;
        0
    })
}

/// Copies `text` into a fixed collectd name field, NUL-terminated, cut to fit.
fn set_name(field: &mut [c_char; 128], text: &[u8]) {
    let len = text.len().min(field.len() - 1);
    for (dst, &src) in field.iter_mut().zip(&text[..len]) {
        *dst = src as c_char;
    }
    field[len] = 0;
}

/// One value list per series and state, as the C plugin sends them.
fn dispatch(table: &PortTable) {
    let mut value = value_t { gauge: 0.0 };
    let mut vl = value_list_t {
        values: std::ptr::null_mut(),
        values_len: 1,
        time: 0,
        interval: 0,
        host: [0; 128],
        plugin: [0; 128],
        plugin_instance: [0; 128],
        type_: [0; 128],
        type_instance: [0; 128],
        meta: std::ptr::null_mut(),
    };
    set_name(&mut vl.plugin, b"tcpconns");
    set_name(&mut vl.type_, b"tcp_connections");
    for (instance, counts) in table.series() {
        let mut text = [0u8; 16];
        let free = {
            let mut cursor = &mut text[..];
            // 16 bytes hold "65535-remote"; a failed write only shortens it.
            let _ = match instance {
                Instance::All => write!(cursor, "all"),
                Instance::Local(port) => write!(cursor, "{port}-local"),
                Instance::Remote(port) => write!(cursor, "{port}-remote"),
            };
            cursor.len()
        };
        set_name(&mut vl.plugin_instance, &text[..text.len() - free]);
        for state in TcpState::ALL {
            value.gauge = f64::from(counts[state.index()]);
            vl.values = &mut value;
            set_name(&mut vl.type_instance, state.name().as_bytes());
            // SAFETY: `vl` is fully initialised, its strings NUL-terminated,
            // and `values` points to one live value; collectd copies the list
            // before returning.
            unsafe {
                plugin_dispatch_values(&vl);
            }
        }
    }
}
