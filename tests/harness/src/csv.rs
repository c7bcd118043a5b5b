//! What collectd's csv writer wrote, read back by full identifier.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One csv file's identifier: `DataDir/<host>/<plugin>[-<plugin instance>]/
/// <type>[-<type instance>]-<date>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident {
    pub host: String,
    pub plugin: String,
    pub plugin_instance: String,
    pub type_: String,
    pub type_instance: String,
}

impl Ident {
    /// The key tcpconns values go by in the tests: (plugin instance, type
    /// instance) for `tcp_connections` (e.g. `("22-local", "LISTEN")`),
    /// (plugin instance, "type-type instance") for other types (e.g.
    /// `("7000-local", "queue_length-accept")`).
    pub fn key(&self) -> (String, String) {
        let tinst = if self.type_ == "tcp_connections" {
            self.type_instance.clone()
        } else {
            format!("{}-{}", self.type_, self.type_instance)
        };
        (self.plugin_instance.clone(), tinst)
    }
}

/// Everything a csv writer wrote: identifier -> data rows as written
/// ("epoch,value" text, header left out), files of several dates joined in
/// date order (a run over midnight).
#[derive(Debug, Default, Clone)]
pub struct Csv {
    pub series: BTreeMap<Ident, Vec<String>>,
}

fn split_once_or_all(s: &str) -> (String, String) {
    match s.split_once('-') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.to_string(), String::new()),
    }
}

/// Parses an "epoch,value" row; panics on one it cannot read.
pub(crate) fn parse_row(row: &str) -> (f64, f64) {
    let mut f = row.split(',');
    let t = f.next().and_then(|s| s.trim().parse::<f64>().ok());
    let v = f.next().and_then(|s| s.trim().parse::<f64>().ok());
    match (t, v) {
        (Some(t), Some(v)) => (t, v),
        _ => panic!("bad csv row {row:?}"),
    }
}

impl Csv {
    /// Reads `datadir` (missing: empty). Only complete lines count: the
    /// last one may be half-written while collectd runs.
    pub fn read(datadir: &Path) -> Csv {
        let mut csv = Csv::default();
        let mut files: Vec<(Ident, String, PathBuf)> = Vec::new();
        let Ok(hosts) = fs::read_dir(datadir) else {
            return csv;
        };
        for h in hosts.flatten() {
            let host = h.file_name().to_string_lossy().into_owned();
            let Ok(plugins) = fs::read_dir(h.path()) else {
                continue;
            };
            for p in plugins.flatten() {
                let (plugin, plugin_instance) = split_once_or_all(&p.file_name().to_string_lossy());
                let Ok(entries) = fs::read_dir(p.path()) else {
                    continue;
                };
                for f in entries.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    // "<type>[-<type instance>]-YYYY-MM-DD"
                    if name.len() < 12 || !name.is_char_boundary(name.len() - 11) {
                        continue;
                    }
                    let (id, date) = name.split_at(name.len() - 11);
                    if !is_date_suffix(date) {
                        continue;
                    }
                    let (type_, type_instance) = split_once_or_all(id);
                    files.push((
                        Ident {
                            host: host.clone(),
                            plugin: plugin.clone(),
                            plugin_instance: plugin_instance.clone(),
                            type_,
                            type_instance,
                        },
                        date.to_string(),
                        f.path(),
                    ));
                }
            }
        }
        files.sort();
        for (ident, _, path) in files {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            csv.series.entry(ident).or_default().extend(
                complete
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with("epoch"))
                    .map(String::from),
            );
        }
        csv
    }

    /// The series of one plugin.
    pub fn plugin(&self, plugin: &str) -> impl Iterator<Item = (&Ident, &Vec<String>)> {
        let plugin = plugin.to_string();
        self.series.iter().filter(move |(k, _)| k.plugin == plugin)
    }

    /// Every row of every tcpconns series, parsed, by [`Ident::key`].
    pub fn tcpconns_rows(&self) -> BTreeMap<(String, String), Vec<(f64, f64)>> {
        let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for (k, rows) in self.plugin("tcpconns") {
            out.entry(k.key())
                .or_default()
                .extend(rows.iter().map(|r| parse_row(r)));
        }
        out
    }

    /// Last value of every tcpconns series, by [`Ident::key`] (the keys of
    /// [`crate::expected_values`]).
    pub fn tcpconns_values(&self) -> BTreeMap<(String, String), f64> {
        self.tcpconns_rows()
            .into_iter()
            .filter_map(|(k, rows)| Some((k, rows.last()?.1)))
            .collect()
    }

    /// Reads of `plugin` that reached the writer: the most rows in any of
    /// its series.
    pub fn reads(&self, plugin: &str) -> usize {
        self.plugin(plugin).map(|(_, r)| r.len()).max().unwrap_or(0)
    }

    /// [`Csv::reads`] of tcpconns.
    pub fn tcpconns_reads(&self) -> usize {
        self.reads("tcpconns")
    }

    /// (tcpconns series, their rows in all, reads): changes while a read
    /// is being written.
    pub(crate) fn progress(&self) -> (usize, usize, usize) {
        let rows: Vec<usize> = self.plugin("tcpconns").map(|(_, r)| r.len()).collect();
        (rows.len(), rows.iter().sum(), self.tcpconns_reads())
    }
}

/// "-YYYY-MM-DD", the suffix the csv plugin gives each file.
fn is_date_suffix(s: &str) -> bool {
    s.len() == 11
        && s.starts_with('-')
        && s[1..].chars().enumerate().all(|(i, ch)| {
            if i == 4 || i == 7 {
                ch == '-'
            } else {
                ch.is_ascii_digit()
            }
        })
}
