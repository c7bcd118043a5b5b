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
pub const KEYS: [&str; 13] = [
    "ListeningPorts",
    "LocalPort",
    "RemotePort",
    "AllPortsSummary",
    "AcceptQueue",
    "ConnectionHealth",
    "LocalNetwork",
    "RemoteNetwork",
    "Namespace",
    "NamespaceLimit",
    "Cgroup",
    "CgroupDepth",
    "CgroupLimit",
];

/// `CgroupLimit` when not given: series per read in `CgroupDepth` mode.
pub const DEFAULT_CGROUP_LIMIT: u32 = 100;
/// `NamespaceLimit` when not given: namespaces `Namespace "all"` follows.
pub const DEFAULT_NAMESPACE_LIMIT: u32 = 64;
/// Longest namespace name.
pub const MAX_NAMESPACE_NAME: usize = 63;
/// Longest cgroup name: `<namespace>-<cgroup>-cgroup` still fits collectd's
/// 128-byte plugin instance.
pub const MAX_CGROUP_NAME: usize = 56;

/// What to count and dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `Namespace "all"`: every other network namespace of the host that
    /// holds TCP sockets, found while running.
    pub all_namespaces: bool,
    /// At most this many discovered namespaces are followed.
    pub namespace_limit: u32,
    /// Series per cgroup (`Cgroup`, `CgroupDepth`).
    pub cgroups: Cgroups,
}

impl Default for Config {
    /// Nothing selected.
    fn default() -> Self {
        Config {
            listening_ports: false,
            all_ports_summary: false,
            local_ports: Vec::new(),
            remote_ports: Vec::new(),
            accept_queue: false,
            connection_health: false,
            local_networks: Vec::new(),
            remote_networks: Vec::new(),
            namespaces: Vec::new(),
            all_namespaces: false,
            namespace_limit: DEFAULT_NAMESPACE_LIMIT,
            cgroups: Cgroups::default(),
        }
    }
}

/// What to report per cgroup (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    /// `Cgroup "/path" ["name"]`: the sockets of the cgroup and of those
    /// below it, as `<name>-cgroup`.
    pub named: Vec<NamedCgroup>,
    /// `CgroupDepth N`: one series for every cgroup N levels below the
    /// root that holds connections (`/system.slice/x.service` is depth 2).
    pub depth: Option<u32>,
    /// `CgroupLimit`: at most this many depth series per read.
    pub limit: u32,
}

impl Default for Cgroups {
    fn default() -> Self {
        Cgroups {
            named: Vec::new(),
            depth: None,
            limit: DEFAULT_CGROUP_LIMIT,
        }
    }
}

impl Cgroups {
    /// Whether any per-cgroup series is asked for.
    pub fn any(&self) -> bool {
        !self.named.is_empty() || self.depth.is_some()
    }
}

/// A cgroup given by path (relative to the cgroup v2 mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCgroup {
    /// `/system.slice/nginx.service`: starts with `/`, no `//`, no `/` at the
    /// end (except the root, `/`).
    pub path: String,
    /// The series is `<name>-cgroup`.
    pub name: String,
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
    /// A `Namespace` value that is not `"/absolute/path" ["name"]` or
    /// `"all"`, or whose name is already taken.
    Namespace { value: String, why: &'static str },
    /// A `Cgroup` value that is not `"/path/in/the/hierarchy" ["name"]`, or
    /// whose name is already taken.
    Cgroup { value: String, why: &'static str },
    /// A count (`CgroupDepth`, `CgroupLimit`, `NamespaceLimit`) that is not
    /// a whole number in its range.
    InvalidNumber {
        key: String,
        value: String,
        min: u32,
        max: u32,
    },
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
            ConfigError::Cgroup { value, why } => write!(
                f,
                "Cgroup: invalid value \"{value}\": {why}; expected \"/path/below/the/cgroup2/mount\" \
                 [\"name\"], the name made of letters, digits, '.', '_' or '-'"
            ),
            ConfigError::InvalidNumber {
                key,
                value,
                min,
                max,
            } => write!(
                f,
                "{key}: invalid value \"{value}\": expected a whole number from {min} to {max}"
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
    all_namespaces: bool,
    namespace_limit: Option<u32>,
    cgroups: Vec<NamedCgroup>,
    cgroup_depth: Option<u32>,
    cgroup_limit: Option<u32>,
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
        } else if key.eq_ignore_ascii_case("Namespace") && value.trim() == "all" {
            self.all_namespaces = true;
        } else if key.eq_ignore_ascii_case("NamespaceLimit") {
            self.namespace_limit = Some(parse_number(key, value, 1, 4096)?);
        } else if key.eq_ignore_ascii_case("Cgroup") {
            let cgroup = parse_cgroup(value)?;
            if self.cgroups.iter().any(|c| c.name == cgroup.name) {
                return Err(ConfigError::Cgroup {
                    value: value.to_owned(),
                    why: "that name is already used by another Cgroup",
                });
            }
            self.cgroups.push(cgroup);
        } else if key.eq_ignore_ascii_case("CgroupDepth") {
            self.cgroup_depth = Some(parse_number(key, value, 1, 64)?);
        } else if key.eq_ignore_ascii_case("CgroupLimit") {
            self.cgroup_limit = Some(parse_number(key, value, 1, 10_000)?);
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
            && self.remote_networks.is_empty()
            && self.cgroups.is_empty()
            && self.cgroup_depth.is_none();
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
            all_namespaces: self.all_namespaces,
            namespace_limit: self.namespace_limit.unwrap_or(DEFAULT_NAMESPACE_LIMIT),
            cgroups: Cgroups {
                named: self.cgroups.clone(),
                depth: self.cgroup_depth,
                limit: self.cgroup_limit.unwrap_or(DEFAULT_CGROUP_LIMIT),
            },
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

/// `"/path" ["name"]`: the path, which starts with `/` (else the error
/// `relative`), and the name if one is given.
fn path_and_name<'a>(
    value: &'a str,
    relative: &'static str,
) -> Result<(&'a str, Option<&'a str>), &'static str> {
    let mut words = value.split_ascii_whitespace();
    let path = words.next().ok_or("no path given")?;
    let given = words.next();
    if words.next().is_some() {
        return Err("more than a path and a name");
    }
    if !path.starts_with('/') {
        return Err(relative);
    }
    Ok((path, given))
}

/// `"/run/netns/web"` (named `web`), `"/proc/1234/ns/net"` (named
/// `pid1234`), or any absolute path followed by a name.
fn parse_namespace(value: &str) -> Result<Namespace, ConfigError> {
    let bad = |why| ConfigError::Namespace {
        value: value.to_owned(),
        why,
    };
    let (path, given) = path_and_name(value, "the path is not absolute").map_err(bad)?;
    let pid = path
        .strip_prefix("/proc/")
        .and_then(|p| p.strip_suffix("/ns/net"))
        .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    let derived = match pid {
        Some(pid) => format!("pid{pid}"),
        None => path.rsplit('/').next().unwrap_or_default().to_owned(),
    };
    let name = given.map(str::to_owned).unwrap_or(derived);
    if !valid_name(&name, MAX_NAMESPACE_NAME) {
        return Err(bad("the name is empty, too long or has other characters"));
    }
    Ok(Namespace {
        path: PathBuf::from(path),
        name,
    })
}

/// A name for a namespace or cgroup series: letters, digits, `.`, `_`, `-`,
/// at most `max` bytes. Safe as a csv/rrd directory and a Graphite node.
fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty() && name.len() <= max && name.chars().all(name_char)
}

/// A character a name may have (see [`valid_name`]).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A name made from free text (a cgroup's last path component): every
/// character that is not allowed becomes `_`, cut to `max`; `fallback`
/// when nothing is left.
pub fn name_from(text: &str, max: usize, fallback: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if name_char(c) { c } else { '_' })
        .take(max)
        .collect();
    if name.is_empty() {
        name = fallback.to_owned();
    }
    name
}

/// `"/system.slice/nginx.service"` (named `nginx.service`) or a path
/// followed by a name; the path is taken relative to the cgroup v2 mount.
fn parse_cgroup(value: &str) -> Result<NamedCgroup, ConfigError> {
    let bad = |why| ConfigError::Cgroup {
        value: value.to_owned(),
        why,
    };
    let (path, given) = path_and_name(value, "the path does not start with /").map_err(bad)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("the path has a . or .. component"));
    }
    let path = format!("/{}", parts.join("/"));
    let name = match given {
        Some(name) => name.to_owned(),
        None => name_from(
            parts.last().copied().unwrap_or("root"),
            MAX_CGROUP_NAME,
            "root",
        ),
    };
    if !valid_name(&name, MAX_CGROUP_NAME) {
        return Err(bad("the name is empty, too long or has other characters"));
    }
    Ok(NamedCgroup { path, name })
}

/// A whole number from `min` to `max`, written as `parse_port` accepts.
fn parse_number(key: &str, value: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    whole_number(value.trim())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ConfigError::InvalidNumber {
            key: key.to_owned(),
            value: value.to_owned(),
            min,
            max,
        })
}

/// Digits with an optional fraction of zeros only (`2`, `2.000000`), at
/// most 9 significant digits.
fn whole_number(token: &str) -> Option<u32> {
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
    if digits.len() > 9 {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse().ok()
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
    match whole_number(token)? {
        port @ 1..=65535 => u16::try_from(port).ok(),
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
    fn cgroups_are_named_from_their_path_or_explicitly() {
        let c = cfg(&[
            ("Cgroup", "/system.slice/nginx.service"),
            ("Cgroup", "//system.slice//db.service/ db"),
            ("Cgroup", "/ root_all"),
            ("Cgroup", "/user.slice/user@1000.service"),
            ("CgroupDepth", "2.000000"),
            ("CgroupLimit", "7"),
        ])
        .unwrap();
        let named: Vec<(&str, &str)> = c
            .cgroups
            .named
            .iter()
            .map(|n| (n.path.as_str(), n.name.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("/system.slice/nginx.service", "nginx.service"),
                ("/system.slice/db.service", "db"),
                ("/", "root_all"),
                ("/user.slice/user@1000.service", "user_1000.service"),
            ]
        );
        assert_eq!((c.cgroups.depth, c.cgroups.limit), (Some(2), 7));
        // Cgroups select something: listening ports are not added.
        assert!(!c.listening_ports);
        let d = cfg(&[("CgroupDepth", "1")]).unwrap();
        assert_eq!(d.cgroups.limit, DEFAULT_CGROUP_LIMIT);
        assert!(!d.listening_ports && d.cgroups.any());
        assert!(!cfg(&[]).unwrap().cgroups.any());
    }

    #[test]
    fn bad_cgroup_values_are_refused_naming_key_and_value() {
        for (key, value, want) in [
            (
                "Cgroup",
                "system.slice",
                "Cgroup: invalid value \"system.slice\": the path does not start with /",
            ),
            (
                "Cgroup",
                "/a/../b",
                "Cgroup: invalid value \"/a/../b\": the path has a . or .. component",
            ),
            (
                "Cgroup",
                "/a b c",
                "Cgroup: invalid value \"/a b c\": more than a path and a name",
            ),
            (
                "Cgroup",
                "/a b/c",
                "Cgroup: invalid value \"/a b/c\": the name is empty",
            ),
            ("Cgroup", "", "Cgroup: invalid value \"\": no path given"),
            (
                "CgroupDepth",
                "0",
                "CgroupDepth: invalid value \"0\": expected a whole number from 1 to 64",
            ),
            (
                "CgroupDepth",
                "2.5",
                "CgroupDepth: invalid value \"2.5\": expected a whole number from 1 to 64",
            ),
            (
                "CgroupLimit",
                "-1",
                "CgroupLimit: invalid value \"-1\": expected a whole number from 1 to 10000",
            ),
            (
                "NamespaceLimit",
                "true",
                "NamespaceLimit: invalid value \"true\": expected a whole number from 1 to 4096",
            ),
        ] {
            let err = cfg(&[(key, value)]).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
        let err = cfg(&[("Cgroup", "/a/x"), ("Cgroup", "/b/x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cgroup: invalid value \"/b/x\": that name is already used by another Cgroup; \
             expected \"/path/below/the/cgroup2/mount\" [\"name\"], the name made of letters, \
             digits, '.', '_' or '-'"
        );
    }

    #[test]
    fn namespace_all_and_its_limit() {
        let c = cfg(&[("Namespace", "all"), ("NamespaceLimit", "3")]).unwrap();
        assert!(c.all_namespaces && c.namespaces.is_empty());
        assert_eq!(c.namespace_limit, 3);
        assert!(c.listening_ports, "Namespace selects no series by itself");
        let d = cfg(&[("Namespace", "/run/netns/all")]).unwrap();
        assert!(!d.all_namespaces);
        assert_eq!(d.namespace_limit, DEFAULT_NAMESPACE_LIMIT);
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
             ConnectionHealth, LocalNetwork, RemoteNetwork, Namespace, NamespaceLimit, Cgroup, \
             CgroupDepth, CgroupLimit"
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
