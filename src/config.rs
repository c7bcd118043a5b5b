//! `<Plugin tcpconns>` options. Each option's values are first turned into
//! one string exactly as collectd's simple-config callback (which the C
//! plugin uses) would hand them over — `22` becomes `"22.000000"`, booleans
//! `"true"`/`"false"`, several values joined by spaces — so every value means
//! what it meant to the C plugin.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use crate::network::Network;

/// The keys the plugin knows, matched case-insensitively.
pub const KEYS: [&str; 9] = [
    "ListeningPorts",
    "LocalPort",
    "RemotePort",
    "AllPortsSummary",
    "AcceptQueue",
    "ConnectionHealth",
    "LocalNetwork",
    "RemoteNetwork",
    "Namespace",
];

/// What to count and dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Report every port that has a LISTEN socket at read time (`-local`).
    pub listening_ports: bool,
    /// Report all sockets together as plugin instance `all`.
    pub all_ports_summary: bool,
    /// Ports reported as `<port>-local`, ascending.
    pub local_ports: Vec<u16>,
    /// Ports reported as `<port>-remote`, ascending.
    pub remote_ports: Vec<u16>,
    /// Also report each reported local port's accept queue (`queue_length`).
    pub accept_queue: bool,
    /// Also report, per series, queued bytes, round-trip time and
    /// retransmissions (`ConnectionHealth`).
    pub connection_health: bool,
    /// Networks reported as `<net>_<prefix>-local`, by local address.
    pub local_networks: Vec<Network>,
    /// Networks reported as `<net>_<prefix>-remote`, by remote address.
    pub remote_networks: Vec<Network>,
    /// Other network namespaces read with the same selection.
    pub namespaces: Vec<Namespace>,
}

/// Another network namespace whose sockets are counted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// `/run/netns/NAME`, `/proc/PID/ns/net`, or any nsfs path.
    pub path: PathBuf,
    /// Put before the plugin instance (`web-22-local`) so series from
    /// different namespaces never collide.
    pub name: String,
}

/// A value the plugin refuses; collectd then stops at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A port value that is not a whole number in 1..=65535.
    InvalidPort { key: String, value: String },
    /// `LocalPort`/`RemotePort` with no value at all.
    MissingPort { key: String },
    /// A key this plugin does not know.
    UnknownKey { key: String, value: String },
    /// A `<Block>` inside `<Plugin tcpconns>`; the plugin takes none.
    Block { key: String },
    /// A `LocalNetwork`/`RemoteNetwork` value that is not a network.
    InvalidNetwork {
        key: String,
        value: String,
        why: String,
    },
    /// A `Namespace` value that is not `"/absolute/path" ["name"]`, or whose
    /// name is already taken.
    Namespace { value: String, why: &'static str },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidPort { key, value } => write!(
                f,
                "{key}: invalid port \"{value}\": expected a whole number from 1 to 65535"
            ),
            ConfigError::MissingPort { key } => write!(
                f,
                "{key}: no port given (value \"\"): expected a whole number from 1 to 65535"
            ),
            ConfigError::UnknownKey { key, value } => write!(
                f,
                "unknown option \"{key}\" (value \"{value}\"): expected one of {}",
                KEYS.join(", ")
            ),
            ConfigError::InvalidNetwork { key, value, why } => write!(
                f,
                "{key}: invalid network \"{value}\": {why}; expected ADDRESS/PREFIX \
                 such as 10.0.0.0/8 or fd00::/8"
            ),
            ConfigError::Namespace { value, why } => write!(
                f,
                "Namespace: invalid value \"{value}\": {why}; expected \"/path/to/netns\" \
                 [\"name\"], the name made of letters, digits, '.', '_' or '-'"
            ),
            ConfigError::Block { key } => write!(
                f,
                "<{key}> block: <Plugin tcpconns> takes only the options {}",
                KEYS.join(", ")
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Collects options in the order collectd hands them over; several
/// `<Plugin tcpconns>` blocks and repeated keys accumulate, as in the C plugin.
#[derive(Debug, Default)]
pub struct ConfigBuilder {
    listening_ports: bool,
    all_ports_summary: bool,
    accept_queue: bool,
    connection_health: bool,
    namespaces: Vec<Namespace>,
    local_networks: BTreeSet<Network>,
    remote_networks: BTreeSet<Network>,
    local_ports: BTreeSet<u16>,
    remote_ports: BTreeSet<u16>,
    warnings: Vec<String>,
}

impl ConfigBuilder {
    /// Applies one option. On error nothing of that option is kept.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if key.eq_ignore_ascii_case("ListeningPorts") {
            self.listening_ports = self.boolean(key, value);
        } else if key.eq_ignore_ascii_case("AllPortsSummary") {
            self.all_ports_summary = self.boolean(key, value);
        } else if key.eq_ignore_ascii_case("AcceptQueue") {
            self.accept_queue = self.boolean(key, value);
        } else if key.eq_ignore_ascii_case("ConnectionHealth") {
            self.connection_health = self.boolean(key, value);
        } else if key.eq_ignore_ascii_case("LocalNetwork") {
            let nets = parse_networks(key, value)?;
            self.local_networks.extend(nets);
        } else if key.eq_ignore_ascii_case("RemoteNetwork") {
            let nets = parse_networks(key, value)?;
            self.remote_networks.extend(nets);
        } else if key.eq_ignore_ascii_case("Namespace") {
            let ns = parse_namespace(value)?;
            if self.namespaces.iter().any(|n| n.name == ns.name) {
                return Err(ConfigError::Namespace {
                    value: value.to_owned(),
                    why: "that name is already used by another Namespace",
                });
            }
            self.namespaces.push(ns);
        } else if key.eq_ignore_ascii_case("LocalPort") {
            let ports = parse_ports(key, value)?;
            self.local_ports.extend(ports);
        } else if key.eq_ignore_ascii_case("RemotePort") {
            let ports = parse_ports(key, value)?;
            self.remote_ports.extend(ports);
        } else {
            return Err(ConfigError::UnknownKey {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        Ok(())
    }

    /// Notes about accepted but doubtful values, for the log.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The configuration in force. As in the C plugin, when nothing else is
    /// selected (no port, no summary), listening ports are reported even if
    /// `ListeningPorts false` was given: a plugin that reports nothing is
    /// never what the user meant.
    pub fn finish(&self) -> Config {
        let nothing_else = !self.all_ports_summary
            && self.local_ports.is_empty()
            && self.remote_ports.is_empty()
            && self.local_networks.is_empty()
            && self.remote_networks.is_empty();
        Config {
            listening_ports: self.listening_ports || nothing_else,
            all_ports_summary: self.all_ports_summary,
            local_ports: self.local_ports.iter().copied().collect(),
            remote_ports: self.remote_ports.iter().copied().collect(),
            accept_queue: self.accept_queue,
            connection_health: self.connection_health,
            local_networks: self.local_networks.iter().copied().collect(),
            remote_networks: self.remote_networks.iter().copied().collect(),
            namespaces: self.namespaces.clone(),
        }
    }

    /// collectd's IS_TRUE: `true`, `yes`, `on` in any case; anything else is
    /// false. Values that are not a recognised false word are noted.
    fn boolean(&mut self, key: &str, value: &str) -> bool {
        let is = |words: [&str; 3]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
        if is(["true", "yes", "on"]) {
            return true;
        }
        if !is(["false", "no", "off"]) {
            self.warnings.push(format!(
                "{key}: \"{value}\" is not a boolean (true/yes/on or false/no/off); taken as false"
            ));
        }
        false
    }
}

/// One value of an option as collectd's config parser typed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    String(&'a str),
    Number(f64),
    Boolean(bool),
}

/// The string collectd's simple-config callback would pass for these values:
/// numbers as `%lf`, booleans as `true`/`false`, joined by single spaces.
pub fn join_values(values: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match v {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&format!("{n:.6}")),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    out
}

/// Applies `(key, value)` options in order and returns the finished config.
pub fn parse<'a>(
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Config, ConfigError> {
    let mut builder = ConfigBuilder::default();
    for (key, value) in options {
        builder.apply(key, value)?;
    }
    Ok(builder.finish())
}

/// One or more networks separated by white space.
fn parse_networks(key: &str, value: &str) -> Result<Vec<Network>, ConfigError> {
    let bad = |token: &str, why: String| ConfigError::InvalidNetwork {
        key: key.to_owned(),
        value: token.to_owned(),
        why,
    };
    let nets = value
        .split_ascii_whitespace()
        .map(|token| Network::parse(token).map_err(|why| bad(token, why)))
        .collect::<Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err(bad(value, "no network given".into()));
    }
    Ok(nets)
}

/// `"/run/netns/web"` (named `web`), `"/proc/1234/ns/net"` (named
/// `pid1234`), or any absolute path followed by a name.
fn parse_namespace(value: &str) -> Result<Namespace, ConfigError> {
    let bad = |why| ConfigError::Namespace {
        value: value.to_owned(),
        why,
    };
    let mut words = value.split_ascii_whitespace();
    let path = words.next().ok_or_else(|| bad("no path given"))?;
    let given = words.next();
    if words.next().is_some() {
        return Err(bad("more than a path and a name"));
    }
    if !path.starts_with('/') {
        return Err(bad("the path is not absolute"));
    }
    let pid = path
        .strip_prefix("/proc/")
        .and_then(|p| p.strip_suffix("/ns/net"))
        .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    let derived = match pid {
        Some(pid) => format!("pid{pid}"),
        None => path.rsplit('/').next().unwrap_or_default().to_owned(),
    };
    let name = given.map(str::to_owned).unwrap_or(derived);
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 63 || !name.chars().all(valid) {
        return Err(bad("the name is empty, too long or has other characters"));
    }
    Ok(Namespace {
        path: PathBuf::from(path),
        name,
    })
}

/// One or more ports separated by white space (`LocalPort 22 25 8080`).
fn parse_ports(key: &str, value: &str) -> Result<Vec<u16>, ConfigError> {
    let ports = value
        .split_ascii_whitespace()
        .map(|token| {
            parse_port(token).ok_or_else(|| ConfigError::InvalidPort {
                key: key.to_owned(),
                value: token.to_owned(),
            })
        })
        .collect::<Result<Vec<u16>, ConfigError>>()?;
    if ports.is_empty() {
        return Err(match value.is_empty() {
            true => ConfigError::MissingPort {
                key: key.to_owned(),
            },
            false => ConfigError::InvalidPort {
                key: key.to_owned(),
                value: value.to_owned(),
            },
        });
    }
    Ok(ports)
}

/// A whole number in 1..=65535, written as digits with an optional fraction
/// of zeros only: `22`, `22.0` and collectd's `22.000000` are port 22.
fn parse_port(token: &str) -> Option<u16> {
    let (whole, fraction) = match token.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (token, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = fraction {
        if !f.bytes().all(|b| b == b'0') {
            return None;
        }
    }
    // Leading zeros are allowed, so compare the value, not the text length.
    let digits = whole.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    let port: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    match port {
        1..=65535 => u16::try_from(port).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(options: &[(&str, &str)]) -> Result<Config, ConfigError> {
        parse(options.iter().copied())
    }

    #[test]
    fn empty_config_reports_listening_ports_only() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c,
            Config {
                listening_ports: true,
                ..Config::default()
            }
        );
    }

    #[test]
    fn listening_ports_false_alone_is_overridden_like_the_c_plugin() {
        assert!(cfg(&[("ListeningPorts", "false")]).unwrap().listening_ports);
        assert!(
            cfg(&[("AllPortsSummary", "false")])
                .unwrap()
                .listening_ports
        );
    }

    #[test]
    fn listening_ports_default_off_once_something_else_is_selected() {
        assert!(!cfg(&[("LocalPort", "22.000000")]).unwrap().listening_ports);
        assert!(!cfg(&[("RemotePort", "22.000000")]).unwrap().listening_ports);
        assert!(!cfg(&[("AllPortsSummary", "true")]).unwrap().listening_ports);
        let both = cfg(&[("AllPortsSummary", "true"), ("ListeningPorts", "true")]).unwrap();
        assert!(both.listening_ports && both.all_ports_summary);
    }

    #[test]
    fn booleans_follow_collectds_is_true() {
        for v in ["true", "TRUE", "yes", "Yes", "on", "ON"] {
            assert!(
                cfg(&[("AllPortsSummary", v)]).unwrap().all_ports_summary,
                "{v}"
            );
        }
        for v in ["false", "no", "off", "1.000000", "", "truex", "y"] {
            let c = cfg(&[("AllPortsSummary", v), ("LocalPort", "1")]).unwrap();
            assert!(!c.all_ports_summary, "{v}");
        }
    }

    #[test]
    fn doubtful_booleans_are_noted() {
        let mut b = ConfigBuilder::default();
        b.apply("ListeningPorts", "1.000000").unwrap();
        b.apply("ListeningPorts", "off").unwrap();
        let w = b.take_warnings();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("ListeningPorts") && w[0].contains("1.000000"),
            "{w:?}"
        );
    }

    #[test]
    fn accept_queue_is_off_unless_asked_and_selects_nothing_by_itself() {
        assert!(!cfg(&[]).unwrap().accept_queue);
        let c = cfg(&[("acceptqueue", "true")]).unwrap();
        assert!(c.accept_queue && c.listening_ports);
    }

    #[test]
    fn connection_health_is_off_unless_asked_and_selects_nothing_by_itself() {
        assert!(!cfg(&[]).unwrap().connection_health);
        let c = cfg(&[("connectionhealth", "yes")]).unwrap();
        assert!(c.connection_health && c.listening_ports);
        let c = cfg(&[("ConnectionHealth", "true"), ("LocalPort", "443")]).unwrap();
        assert!(c.connection_health && !c.listening_ports);
    }

    #[test]
    fn namespaces_are_named_from_their_path_or_explicitly() {
        let c = cfg(&[
            ("Namespace", "/run/netns/web"),
            ("namespace", "/proc/1234/ns/net"),
            ("Namespace", "/var/run/netns/x y.z_1-2"),
        ])
        .unwrap();
        let names: Vec<_> = c
            .namespaces
            .iter()
            .map(|n| (n.path.to_str().unwrap(), &n.name[..]))
            .collect();
        assert_eq!(
            names,
            vec![
                ("/run/netns/web", "web"),
                ("/proc/1234/ns/net", "pid1234"),
                ("/var/run/netns/x", "y.z_1-2"),
            ]
        );
        assert!(c.listening_ports, "namespaces select nothing by themselves");
    }

    #[test]
    fn bad_namespaces_are_refused_naming_the_value() {
        for (value, why) in [
            ("", "no path given"),
            ("run/netns/web", "the path is not absolute"),
            ("/run/netns/web a b", "more than a path and a name"),
            ("/run/netns/web a/b", "the name is empty"),
            ("/", "the name is empty"),
        ] {
            let err = cfg(&[("Namespace", value)]).unwrap_err().to_string();
            let want = format!("Namespace: invalid value \"{value}\": {why}");
            assert!(err.starts_with(&want), "{err}");
        }
        let err = cfg(&[("Namespace", "/run/netns/a"), ("Namespace", "/x/a")]).unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
    }

    #[test]
    fn networks_accumulate_and_bad_ones_are_refused() {
        let c = cfg(&[
            ("LocalNetwork", "127.0.0.0/8 ::1"),
            ("RemoteNetwork", "10.0.0.0/8"),
            ("remotenetwork", "10.0.0.0/8 fd00::/8"),
        ])
        .unwrap();
        assert_eq!(c.local_networks.len(), 2);
        assert_eq!(c.remote_networks.len(), 2);
        assert!(!c.listening_ports, "a network is a selection");
        let err = cfg(&[("RemoteNetwork", "10.0.0.1/8")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RemoteNetwork: invalid network \"10.0.0.1/8\": 10.0.0.1/8 has bits set past the \
             prefix; the network is 10.0.0.0/8; expected ADDRESS/PREFIX such as 10.0.0.0/8 or \
             fd00::/8"
        );
        let err = cfg(&[("LocalNetwork", "")]).unwrap_err();
        assert!(err.to_string().contains("no network given"), "{err}");
    }

    #[test]
    fn keys_are_case_insensitive() {
        let c = cfg(&[
            ("localport", "22.000000"),
            ("REMOTEPORT", "25"),
            ("allportssummary", "yes"),
            ("listeningPORTS", "on"),
        ])
        .unwrap();
        assert_eq!(c.local_ports, vec![22]);
        assert_eq!(c.remote_ports, vec![25]);
        assert!(c.all_ports_summary && c.listening_ports);
    }

    #[test]
    fn ports_as_number_string_or_fraction_of_zeros() {
        for v in ["22", "22.000000", "22.0", "022", "22."] {
            assert_eq!(
                cfg(&[("LocalPort", v)]).unwrap().local_ports,
                vec![22],
                "{v}"
            );
        }
        assert_eq!(
            cfg(&[("LocalPort", "65535.000000"), ("LocalPort", "1")])
                .unwrap()
                .local_ports,
            vec![1, 65535]
        );
    }

    #[test]
    fn several_ports_on_one_line_and_blocks_accumulate() {
        let c = cfg(&[
            ("LocalPort", "22.000000 25.000000 8080.000000"),
            ("RemotePort", "443"),
            ("LocalPort", "22"),
            ("LocalPort", "\t80  "),
            ("RemotePort", "22"),
        ])
        .unwrap();
        assert_eq!(c.local_ports, vec![22, 25, 80, 8080]);
        assert_eq!(c.remote_ports, vec![22, 443]);
    }

    #[test]
    fn bad_ports_are_refused_naming_key_value_and_range() {
        for bad in [
            "0",
            "0.000000",
            "-1.000000",
            "65536.000000",
            "70000",
            "abc",
            "22abc",
            "22.500000",
            "22.7",
            "true",
            "false",
            "0x16",
            "+22",
            "1e3",
            ".5",
            "22 25x",
            "99999999999999999999",
        ] {
            let err = cfg(&[("LocalPort", bad)]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("LocalPort: invalid port \""),
                "{bad}: {text}"
            );
            assert!(
                text.ends_with("expected a whole number from 1 to 65535"),
                "{text}"
            );
            assert!(matches!(err, ConfigError::InvalidPort { .. }), "{bad}");
        }
        let err = cfg(&[("RemotePort", "22 25x 30")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RemotePort: invalid port \"25x\": expected a whole number from 1 to 65535"
        );
    }

    #[test]
    fn empty_port_values_are_refused() {
        assert_eq!(
            cfg(&[("LocalPort", "")]).unwrap_err(),
            ConfigError::MissingPort {
                key: "LocalPort".into()
            }
        );
        assert_eq!(
            cfg(&[("RemotePort", "   ")]).unwrap_err().to_string(),
            "RemotePort: invalid port \"   \": expected a whole number from 1 to 65535"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = cfg(&[("LocalPorts", "22.000000")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown option \"LocalPorts\" (value \"22.000000\"): expected one of \
             ListeningPorts, LocalPort, RemotePort, AllPortsSummary, AcceptQueue, \
             ConnectionHealth, LocalNetwork, RemoteNetwork, Namespace"
        );
    }

    #[test]
    fn values_are_joined_as_collectds_simple_config_does() {
        use Value::*;
        assert_eq!(join_values(&[Number(22.0)]), "22.000000");
        assert_eq!(join_values(&[Number(-1.0)]), "-1.000000");
        assert_eq!(join_values(&[Number(22.5)]), "22.500000");
        assert_eq!(join_values(&[Number(70000.0)]), "70000.000000");
        assert_eq!(join_values(&[Boolean(true)]), "true");
        assert_eq!(join_values(&[String("22abc")]), "22abc");
        assert_eq!(join_values(&[]), "");
        assert_eq!(
            join_values(&[Number(22.0), String("25"), Number(8080.0)]),
            "22.000000 25 8080.000000"
        );
        let joined = join_values(&[Number(22.0), Number(25.0)]);
        assert_eq!(
            cfg(&[("LocalPort", &joined)]).unwrap().local_ports,
            vec![22, 25]
        );
        let err = cfg(&[("LocalPort", &join_values(&[Boolean(true)]))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LocalPort: invalid port \"true\": expected a whole number from 1 to 65535"
        );
    }

    #[test]
    fn the_same_port_may_be_local_and_remote() {
        let c = cfg(&[("LocalPort", "22"), ("RemotePort", "22")]).unwrap();
        assert_eq!((c.local_ports, c.remote_ports), (vec![22], vec![22]));
    }
}
