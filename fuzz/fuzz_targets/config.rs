//! `<Plugin tcpconns>` options through `config::join_values`,
//! `config::ConfigBuilder::apply` and `finish`.
//!
//! Input: text (UTF-8, lossily), one option per line as in collectd.conf:
//! the first word is the key, the rest its values. A value in double quotes
//! (no escapes) is a string and may hold spaces, `true`/`false` are booleans,
//! what parses as a float is a number, anything else is a string. The values
//! are joined with `join_values`, as collectd's simple-config callback would,
//! and handed to `apply`. So seeds are plain config lines.
//!
//! Invariants: no panic (errors and warnings included); `join_values` puts
//! each value in its place, a number as a `%lf` that reads back as it; an
//! option refused leaves the configuration as it was, an unknown key is
//! refused as such, an accepted one only adds; the finished configuration
//! has sorted unique ports in 1..=65535, sorted unique networks, namespaces
//! and cgroups with valid unique names, counts in their ranges, and reports
//! listening ports when nothing else is selected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpconns::config::{join_values, Config, ConfigBuilder, ConfigError, Value, KEYS};

/// Splits `rest` of a line into values the way the input format says.
fn values(mut rest: &str) -> Vec<Value<'_>> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return out;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(Value::String(&quoted[..end]));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let token = &rest[..end];
        rest = &rest[end..];
        out.push(match token {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => match token.parse::<f64>() {
                Ok(n) => Value::Number(n),
                Err(_) => Value::String(token),
            },
        });
    }
}

fn check_joined(values: &[Value<'_>], joined: &str) {
    if values.is_empty() {
        assert_eq!(joined, "");
        return;
    }
    if values
        .iter()
        .any(|v| matches!(v, Value::String(s) if s.contains(' ')))
    {
        return;
    }
    let tokens: Vec<&str> = joined.split(' ').collect();
    assert_eq!(tokens.len(), values.len(), "{values:?} -> {joined:?}");
    for (token, value) in tokens.iter().zip(values) {
        match *value {
            Value::String(s) => assert_eq!(*token, s),
            Value::Boolean(b) => assert_eq!(*token, if b { "true" } else { "false" }),
            Value::Number(n) => {
                let back: f64 = token.parse().unwrap_or_else(|_| panic!("{n} -> {token:?}"));
                let slack = 1e-6f64.max(n.abs() * 1e-15);
                assert!(
                    (back.is_nan() && n.is_nan()) || back == n || (back - n).abs() <= slack,
                    "{n} -> {token:?}"
                );
                if n.is_finite() {
                    let (_, fraction) = token.split_once('.').expect("%lf has a point");
                    assert_eq!(fraction.len(), 6, "{n} -> {token:?}");
                }
            }
        }
    }
}

fn strictly_ascending<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

fn check_config(c: &Config) {
    assert!(strictly_ascending(&c.local_ports), "{c:?}");
    assert!(strictly_ascending(&c.remote_ports), "{c:?}");
    assert!(!c.local_ports.contains(&0) && !c.remote_ports.contains(&0));
    assert!(strictly_ascending(&c.local_networks), "{c:?}");
    assert!(strictly_ascending(&c.remote_networks), "{c:?}");
    for (i, ns) in c.namespaces.iter().enumerate() {
        assert!(ns.path.is_absolute(), "{ns:?}");
        assert!((1..=63).contains(&ns.name.len()), "{ns:?}");
        assert!(ns
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        assert!(c.namespaces[..i].iter().all(|o| o.name != ns.name));
    }
    for (i, cg) in c.cgroups.named.iter().enumerate() {
        assert!(cg.path.starts_with('/') && !cg.path.contains("//"), "{cg:?}");
        assert!(cg.path == "/" || !cg.path.ends_with('/'), "{cg:?}");
        assert!(cg.path.split('/').all(|p| p != "." && p != ".."), "{cg:?}");
        assert!((1..=56).contains(&cg.name.len()), "{cg:?}");
        assert!(cg
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        assert!(c.cgroups.named[..i].iter().all(|o| o.name != cg.name));
    }
    assert!(c.cgroups.depth.is_none_or(|d| (1..=64).contains(&d)));
    assert!((1..=10_000).contains(&c.cgroups.limit));
    assert!((1..=4096).contains(&c.namespace_limit));
    let nothing_else = !c.all_ports_summary
        && c.local_ports.is_empty()
        && c.remote_ports.is_empty()
        && c.local_networks.is_empty()
        && c.remote_networks.is_empty()
        && !c.cgroups.any();
    assert!(c.listening_ports || !nothing_else, "{c:?} reports nothing");
}

/// `small` is kept inside `big`.
fn kept<T: PartialEq>(small: &[T], big: &[T]) -> bool {
    small.iter().all(|x| big.contains(x))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut builder = ConfigBuilder::default();
    for line in text.split('\n') {
        let line = line.trim_start_matches([' ', '\t']);
        let (key, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let values = values(rest);
        let joined = join_values(&values);
        check_joined(&values, &joined);

        let before = builder.finish();
        match builder.apply(key, &joined) {
            Ok(()) => {
                let after = builder.finish();
                assert!(KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)));
                assert!(kept(&before.local_ports, &after.local_ports));
                assert!(kept(&before.remote_ports, &after.remote_ports));
                assert!(kept(&before.local_networks, &after.local_networks));
                assert!(kept(&before.remote_networks, &after.remote_networks));
                assert!(kept(&before.namespaces, &after.namespaces));
                assert!(kept(&before.cgroups.named, &after.cgroups.named));
            }
            Err(err) => {
                assert_eq!(
                    builder.finish(),
                    before,
                    "{key} {joined:?} refused but kept"
                );
                let known = KEYS.iter().any(|k| k.eq_ignore_ascii_case(key));
                assert_eq!(
                    !known,
                    matches!(err, ConfigError::UnknownKey { .. }),
                    "{key}: {err:?}"
                );
                let _ = err.to_string();
            }
        }
        for warning in builder.take_warnings() {
            assert!(!warning.is_empty());
        }
    }
    check_config(&builder.finish());
});
