//! The collectd glue: registration, callbacks, and turning a finished
//! [`PortTable`] into value lists. Every callback catches panics so that none
//! can cross into collectd.

use std::ffi::{c_char, c_int, CStr};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use collectd_plugin::bindings::{
    oconfig_item_t, plugin_dispatch_values, plugin_register_complex_config, plugin_register_init,
    plugin_register_read, plugin_register_shutdown, value_list_t, value_t, OCONFIG_TYPE_BOOLEAN,
    OCONFIG_TYPE_NUMBER, OCONFIG_TYPE_STRING,
};
use collectd_plugin::CollectdLoggerBuilder;
use log::{error, info, warn, LevelFilter};

use std::path::Path;

use crate::cgroup::{CgroupReport, Hierarchy};
use crate::config::{join_values, Cgroups, Config, ConfigBuilder, ConfigError, Namespace, Value};
use crate::discover;
use crate::netns::{identity, Identity};
use crate::socket::Fields;
use crate::source::{HostGatherer, NamespaceGatherer, Source};
use crate::state::TcpState;
use crate::table::{Counts, Health, Instance, PortTable};

const NAME: &CStr = c"tcpconns";

/// Options received so far; collectd calls the config callback before init.
static OPTIONS: Mutex<Option<ConfigBuilder>> = Mutex::new(None);
/// Everything a read needs, made at init.
static READER: Mutex<Option<Reader>> = Mutex::new(None);

struct Reader {
    /// collectd's own namespace first, then each `Namespace`.
    targets: Vec<Target>,
    /// `Namespace "all"`.
    discovery: Option<Discovery>,
    /// The cgroup v2 hierarchy, when per-cgroup series are asked for.
    hierarchy: Option<Hierarchy>,
}

struct Target {
    /// Put before plugin instances: `web-22-local`; `None` for collectd's own
    /// namespace, whose identifiers are exactly the C plugin's.
    prefix: Option<String>,
    table: PortTable,
    gatherer: Gatherer,
    noted_ignored: bool,
    /// `Cgroup`, `CgroupDepth`: the series per cgroup.
    cgroups: Option<CgroupReport>,
}

impl Target {
    /// A target whose gatherer `gatherer` makes, given what the table needs
    /// read of each socket.
    fn new(
        prefix: Option<String>,
        config: &Config,
        gatherer: impl FnOnce(Fields) -> Gatherer,
    ) -> Target {
        let table = PortTable::new(config);
        let label = match &prefix {
            Some(name) => format!("namespace {name}: "),
            None => String::new(),
        };
        Target {
            cgroups: config
                .cgroups
                .any()
                .then(|| CgroupReport::new(&config.cgroups, label)),
            prefix,
            gatherer: gatherer(table.fields()),
            table,
            noted_ignored: false,
        }
    }
}

enum Gatherer {
    Host(HostGatherer),
    Namespace(NamespaceGatherer),
}

/// Namespaces are looked for again every this many reads.
const SCAN_EVERY_READS: u32 = 5;

/// `Namespace "all"`: the namespaces found and followed, by identity.
struct Discovery {
    config: Config,
    /// collectd's own namespace, read already: never followed.
    own: Option<Identity>,
    found: Vec<(Identity, Target)>,
    /// Reads until the next scan.
    wait: u32,
    /// A namespace was left out by `NamespaceLimit` (logged once).
    over_limit: bool,
}

impl Discovery {
    /// Looks for namespaces when it is time: follows new ones (within the
    /// limit), forgets gone ones.
    fn refresh(&mut self) {
        if self.wait > 0 {
            self.wait -= 1;
            return;
        }
        self.wait = SCAN_EVERY_READS - 1;
        // collectd's own namespace and the configured ones (as they are
        // now: one may be made again) are read already.
        let skip: Vec<Identity> = self
            .own
            .into_iter()
            .chain(
                self.config
                    .namespaces
                    .iter()
                    .filter_map(|n| identity(&n.path).ok()),
            )
            .collect();
        // Names in use stay theirs: a new namespace gets another.
        let taken: Vec<String> = self
            .config
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .chain(self.found.iter().filter_map(|(_, t)| t.prefix.clone()))
            .collect();
        let now = discover::scan(Path::new("/proc"), Path::new("/run/netns"), &skip, &taken);
        let followed: Vec<Identity> = self.found.iter().map(|(id, _)| *id).collect();
        let limit = usize::try_from(self.config.namespace_limit).unwrap_or(usize::MAX);
        let changes = discover::changes(&now, &followed, limit);
        self.found.retain(|(id, target)| {
            let gone = changes.gone.contains(id);
            if gone {
                info!(
                    "namespace {}: gone; no longer read",
                    target.prefix.as_deref().unwrap_or_default()
                );
            }
            !gone
        });
        for f in changes.kept {
            if let Some((_, target)) = self.found.iter_mut().find(|(id, _)| *id == f.identity) {
                if let Gatherer::Namespace(g) = &mut target.gatherer {
                    g.set_path(f.path.clone());
                }
            }
        }
        for f in changes.new {
            info!(
                "Namespace all: found namespace {} ({}); reading it",
                f.name,
                f.path.display()
            );
            let ns = Namespace {
                path: f.path.clone(),
                name: f.name.clone(),
            };
            let target = Target::new(Some(f.name.clone()), &self.config, |fields| {
                Gatherer::Namespace(NamespaceGatherer::discovered(&ns, f.identity, fields))
            });
            self.found.push((f.identity, target));
        }
        let left_out = changes.left_out;
        let over = left_out > 0;
        if over != std::mem::replace(&mut self.over_limit, over) {
            match over {
                true => warn!(
                    "Namespace all: {} namespaces found, more than NamespaceLimit {}; \
                     following {} (the first found), {left_out} left out (logged once, \
                     until they fit again)",
                    self.found.len() + left_out,
                    self.config.namespace_limit,
                    self.found.len()
                ),
                false => info!(
                    "Namespace all: the namespaces found fit NamespaceLimit {} again",
                    self.config.namespace_limit
                ),
            }
        }
    }
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
        // SAFETY: NAME is a 'static NUL-terminated string and the callbacks
        // are extern "C" functions with the signatures collectd expects.
        unsafe {
            plugin_register_complex_config(NAME.as_ptr(), Some(config_callback));
            plugin_register_init(NAME.as_ptr(), Some(init_callback));
            plugin_register_read(NAME.as_ptr(), Some(read_callback));
            plugin_register_shutdown(NAME.as_ptr(), Some(shutdown_callback));
        }
        0
    });
}

/// A C string from collectd, or "" for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the returned value.
unsafe fn text<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}

/// A C array from collectd as a slice; empty for NULL or a count below 1.
///
/// # Safety
/// `p` is NULL or points to `n` valid elements that outlive the slice.
unsafe fn items<'a, T>(p: *const T, n: c_int) -> &'a [T] {
    match usize::try_from(n) {
        Ok(n) if n > 0 && !p.is_null() => {
            // SAFETY: per this function's contract.
            unsafe { std::slice::from_raw_parts(p, n) }
        }
        _ => &[],
    }
}

/// One `<Plugin tcpconns>` block (collectd calls this once per block, so
/// several blocks accumulate). Each option's values become the string the C
/// plugin would have received; every bad option is logged, then collectd is
/// told the configuration failed, which stops it at start.
unsafe extern "C" fn config_callback(block: *mut oconfig_item_t) -> c_int {
    guard("config", || {
        fault("config");
        if block.is_null() {
            error!("collectd passed no configuration block");
            return -1;
        }
        // SAFETY: collectd passes a valid configuration tree that lives for
        // the duration of this call; nothing here keeps a pointer into it.
        let options = unsafe { options(&*block) };
        let mut status = 0;
        let mut builder = lock(&OPTIONS);
        let builder = builder.get_or_insert_with(ConfigBuilder::default);
        for (key, value) in options {
            let result = value.and_then(|value| builder.apply(&key, &value));
            for warning in builder.take_warnings() {
                warn!("{warning}");
            }
            if let Err(err) = result {
                error!("{err}");
                status = -1;
            }
        }
        status
    })
}

/// The options of one block as `(key, value)`: each value the string the C
/// plugin would have received, or the error of a nested block.
///
/// # Safety
/// `block` is a configuration tree from collectd, valid for this call.
unsafe fn options(block: &oconfig_item_t) -> Vec<(String, Result<String, ConfigError>)> {
    // SAFETY: children, keys, values and strings are collectd's, valid for
    // this call (this function's contract).
    let children = unsafe { items(block.children, block.children_num) };
    children
        .iter()
        .map(|child| {
            // SAFETY: see above.
            let key = unsafe { text(child.key) }.into_owned();
            if child.children_num > 0 {
                return (key.clone(), Err(ConfigError::Block { key }));
            }
            // SAFETY: see above.
            let raw = unsafe { items(child.values, child.values_num) };
            let values: Vec<Value<'_>> = raw
                .iter()
                .filter_map(|v| {
                    // SAFETY: the union member read is the one `type_` names.
                    unsafe {
                        match u32::try_from(v.type_) {
                            Ok(OCONFIG_TYPE_STRING) => Some(Value::String(match v.value.string {
                                p if p.is_null() => "",
                                p => CStr::from_ptr(p).to_str().unwrap_or("\u{fffd}"),
                            })),
                            Ok(OCONFIG_TYPE_NUMBER) => Some(Value::Number(v.value.number)),
                            Ok(OCONFIG_TYPE_BOOLEAN) => Some(Value::Boolean(v.value.boolean != 0)),
                            _ => None,
                        }
                    }
                })
                .collect();
            (key, Ok(join_values(&values)))
        })
        .collect()
}

/// A deliberate panic at `point` when the crate is built with the
/// `fault-injection` feature and `TCPCONNS_FAULT` names the point; lets tests
/// show that no panic reaches collectd. A no-op in normal builds.
#[cfg(feature = "fault-injection")]
fn fault(point: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static READ_FIRED: AtomicBool = AtomicBool::new(false);
    let wanted = std::env::var("TCPCONNS_FAULT").unwrap_or_default();
    for w in wanted.split(',') {
        let fire = match w {
            "read-once" => point == "read" && !READ_FIRED.swap(true, Ordering::SeqCst),
            w => w == point,
        };
        if fire {
            panic!("injected fault at {point}");
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault(_point: &str) {}

unsafe extern "C" fn init_callback() -> c_int {
    guard("init", || {
        fault("init");
        let mut config = lock(&OPTIONS)
            .get_or_insert_with(ConfigBuilder::default)
            .finish();
        let hierarchy = if config.cgroups.any() {
            match Hierarchy::find(&config.cgroups.named) {
                Ok(h) => {
                    info!(
                        "per-cgroup series from the cgroup v2 hierarchy at {}",
                        h.mount().display()
                    );
                    Some(h)
                }
                Err(why) => {
                    warn!("Cgroup/CgroupDepth: {why}; no per-cgroup series");
                    config.cgroups = Cgroups::default();
                    None
                }
            }
        } else {
            None
        };
        let mut targets = vec![Target::new(None, &config, |fields| {
            Gatherer::Host(HostGatherer::new(fields))
        })];
        for ns in &config.namespaces {
            targets.push(Target::new(Some(ns.name.clone()), &config, |fields| {
                Gatherer::Namespace(NamespaceGatherer::new(ns, fields))
            }));
        }
        let discovery = config.all_namespaces.then(|| Discovery {
            config: config.clone(),
            own: identity(Path::new("/proc/self/ns/net")).ok(),
            found: Vec::new(),
            wait: 0,
            over_limit: false,
        });
        *lock(&READER) = Some(Reader {
            targets,
            discovery,
            hierarchy,
        });
        0
    })
}

unsafe extern "C" fn read_callback() -> c_int {
    guard("read", || {
        fault("read");
        let mut reader = lock(&READER);
        let Some(reader) = reader.as_mut() else {
            error!("read called before init");
            return -1;
        };
        if let Some(hierarchy) = &mut reader.hierarchy {
            hierarchy.look();
        }
        let mut status = 0;
        for target in &mut reader.targets {
            if read_target(target, reader.hierarchy.as_mut(), false).is_err() {
                status = -1;
            }
        }
        if let Some(discovery) = &mut reader.discovery {
            discovery.refresh();
            for (_, target) in &mut discovery.found {
                // Failures of a discovered namespace are logged by its gatherer.
                let _ = read_target(target, reader.hierarchy.as_mut(), true);
            }
        }
        status
    })
}

/// Reads one target and dispatches its series; with `if_any`, only when
/// the read saw sockets (a discovered namespace without TCP sockets is
/// not reported). `Err` when collectd's own namespace could not be read.
fn read_target(
    target: &mut Target,
    hierarchy: Option<&mut Hierarchy>,
    if_any: bool,
) -> Result<(), ()> {
    let source = match &mut target.gatherer {
        // Both sources failing is logged by the gatherer, once.
        Gatherer::Host(gatherer) => match gatherer.read(&mut target.table) {
            Ok(source) => source,
            Err(_) => return Err(()),
        },
        // Another namespace missing or failing is logged once by its
        // gatherer and fails nothing else.
        Gatherer::Namespace(gatherer) => {
            if !gatherer.read(&mut target.table) {
                return Ok(());
            }
            Source::Netlink
        }
    };
    if if_any && !target.table.saw_sockets() {
        return Ok(());
    }
    if target.table.ignored() > 0 && !target.noted_ignored {
        info!(
            "ignoring {} sockets in states outside 1..11",
            target.table.ignored()
        );
        target.noted_ignored = true;
    }
    dispatch(target.prefix.as_deref(), &target.table, source);
    if let (Some(report), Some(counts)) = (&mut target.cgroups, target.table.cgroup_counts()) {
        match (source, hierarchy) {
            (Source::Netlink, Some(hierarchy)) => {
                let series = report.read(counts, hierarchy);
                dispatch_cgroups(target.prefix.as_deref(), &series.series);
            }
            (Source::Procfs, _) => report.on_procfs(),
            // Not met: without a hierarchy, init drops the cgroup options.
            (Source::Netlink, None) => {}
        }
    }
    Ok(())
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

/// Writes a plugin instance, `name` after `<prefix>-` for another
/// namespace (`22-local`, `web-22-local`, `web-nginx.service-cgroup`), into
/// `field`.
fn set_instance(field: &mut [c_char; 128], prefix: Option<&str>, name: impl std::fmt::Display) {
    let mut text = [0u8; 128];
    let free = {
        let mut cursor = &mut text[..];
        // Namespace names are at most 63 bytes and cgroup names 56, so this
        // fits; a failed write would only shorten the name.
        let _ = match prefix {
            Some(prefix) => write!(cursor, "{prefix}-{name}"),
            None => write!(cursor, "{name}"),
        };
        cursor.len()
    };
    set_name(field, &text[..text.len() - free]);
}

/// One value list per state, as the C plugin sends them.
fn submit_states(vl: &mut value_list_t, counts: &Counts) {
    for state in TcpState::ALL {
        let n = f64::from(counts[state.index()]);
        submit(vl, b"tcp_connections", state.name().as_bytes(), n);
    }
}

/// One value list per cgroup series and state: plugin instance
/// `<name>-cgroup` (`web-<name>-cgroup` in namespace `web`).
fn dispatch_cgroups(prefix: Option<&str>, series: &[(String, Counts)]) {
    let mut vl = value_list();
    for (name, counts) in series {
        set_instance(
            &mut vl.plugin_instance,
            prefix,
            format_args!("{name}-cgroup"),
        );
        submit_states(&mut vl, counts);
    }
}

/// An empty value list of this plugin.
fn value_list() -> value_list_t {
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
    vl
}

/// Dispatches one gauge with the type and type instance given.
fn submit(vl: &mut value_list_t, type_: &[u8], type_instance: &[u8], gauge: f64) {
    let mut value = value_t { gauge };
    vl.values = &mut value;
    vl.values_len = 1;
    set_name(&mut vl.type_, type_);
    set_name(&mut vl.type_instance, type_instance);
    // SAFETY: `vl` is fully initialised, its strings NUL-terminated, and
    // `values` points to one live value; collectd copies the list before
    // returning, so nothing keeps the pointer.
    unsafe {
        plugin_dispatch_values(vl);
    }
    vl.values = std::ptr::null_mut();
}

/// A series' [`Health`]: queued bytes from either source; round-trip times
/// and retransmissions only from netlink (`/proc` has no `tcp_info`: left
/// out, not made up), and round-trip times only when the series has
/// ESTABLISHED connections (no RTT is not an RTT of 0 s).
fn submit_health(vl: &mut value_list_t, health: &Health, source: Source) {
    submit(vl, b"bytes", b"send_queue", health.send_queue as f64);
    submit(vl, b"bytes", b"receive_queue", health.receive_queue as f64);
    if source != Source::Netlink {
        return;
    }
    if let Some(mean) = health.rtt_mean_us() {
        submit(vl, b"latency", b"rtt_mean", mean / 1e6);
        submit(
            vl,
            b"latency",
            b"rtt_max",
            f64::from(health.rtt_max_us) / 1e6,
        );
    }
    let retransmitting = f64::from(health.retransmitting);
    submit(vl, b"count", b"retrans_connections", retransmitting);
    submit(
        vl,
        b"count",
        b"retrans_segments",
        health.retrans_segments as f64,
    );
}

/// One value list per series and state, as the C plugin sends them; with
/// `ConnectionHealth`, each series' health after its states; then, with
/// `AcceptQueue`, the accept queues.
fn dispatch(prefix: Option<&str>, table: &PortTable, source: Source) {
    let mut vl = value_list();
    for (instance, counts, health) in table.series() {
        set_instance(&mut vl.plugin_instance, prefix, instance);
        submit_states(&mut vl, counts);
        if table.reports_health() {
            submit_health(&mut vl, health, source);
        }
    }
    for q in table.accept_queues() {
        set_instance(&mut vl.plugin_instance, prefix, Instance::Local(q.port));
        submit(&mut vl, b"queue_length", b"accept", f64::from(q.queue));
        if let Some(limit) = q.limit {
            submit(&mut vl, b"queue_length", b"accept_limit", f64::from(limit));
        }
    }
}
