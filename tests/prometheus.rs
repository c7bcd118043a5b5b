//! The Prometheus path: collectd with our plugin and collectd's
//! `write_prometheus` (the shipped `collectd.d/prometheus.conf`, included
//! verbatim), scraped by Debian's real Prometheus server running the
//! documented `docs/prometheus/prometheus.yml` and alerting rules (intervals
//! shortened to 1 s), all in one network namespace of the test's own.
//! Through Prometheus' HTTP API: every tcpconns series and value equals the
//! population (accept queues: what `ss -ltn` shows), the labels are the
//! documented ones, every PromQL query of `docs/prometheus.md` gives what the
//! doc says on this population, both alerts go pending for the right ports,
//! and every query of the Grafana dashboard is one of the doc's.
//!
//! The namespace also holds collectd's exporter port 9103, Prometheus on 9090,
//! the scrapes and the test's queries, so the plugin is configured with the
//! population's ports only (as `collectd.d/tcpconns.conf` does), not
//! `ListeningPorts`/`AllPortsSummary`, which would count those too.
//!
//! `TCPCONNS_PROM_RECORD=<dir>` writes what the doc shows (exporter text,
//! targets, each query through `promtool query instant`, alerts) into <dir>:
//! `docs/prometheus/record.sh`. Needs root, iproute2, collectd-core,
//! libmicrohttpd12, libprotobuf-c1, prometheus and python3 (`ci/setup.sh`).

use harness::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PROM: &str = "http://127.0.0.1:9090";
const EXPORTER: &str = "http://127.0.0.1:9103/metrics";
const HOST: &str = "web-1";

// The PromQL of docs/prometheus.md, one per ```promql block there; the test
// checks the set is exactly this and what each gives.
const ONE_PORT: &str = r#"collectd_tcpconns_tcp_connections{tcpconns="443-local"}"#;
const EVERY: &str = "collectd_tcpconns_tcp_connections";
const ESTABLISHED: &str = r#"collectd_tcpconns_tcp_connections{type="ESTABLISHED"}"#;
const CLOSE_WAIT_GROWS: &str =
    r#"delta(collectd_tcpconns_tcp_connections{type="CLOSE_WAIT"}[30m]) > 0"#;
const TIME_WAIT_SHARE: &str = r#"collectd_tcpconns_tcp_connections{type="TIME_WAIT"} / ignoring(type) (sum without(type) (collectd_tcpconns_tcp_connections) > 0)"#;
const ACCEPT_RATIO: &str = r#"collectd_tcpconns_queue_length{type="accept"} / ignoring(type) collectd_tcpconns_queue_length{type="accept_limit"}"#;
const QUEUES: &str = "collectd_tcpconns_queue_length";
const DOC_QUERIES: [&str; 6] = [
    ONE_PORT,
    EVERY,
    ESTABLISHED,
    CLOSE_WAIT_GROWS,
    TIME_WAIT_SHARE,
    ACCEPT_RATIO,
];

/// Fetches from Prometheus' HTTP API and flattens the
/// JSON: one line per sample, `k=v` labels joined by \x1f, a tab, the value.
const API_PY: &str = r#"
import json, sys, urllib.error, urllib.parse, urllib.request
base, endpoint, arg = sys.argv[1], sys.argv[2], sys.argv[3]
params = {"query": {"query": arg}, "series": {"match[]": arg}}.get(endpoint, {})
url = base + "/api/v1/" + endpoint + ("?" + urllib.parse.urlencode(params) if params else "")
try:
    body = urllib.request.urlopen(url, timeout=5).read()
except urllib.error.HTTPError as e:
    body = e.read()
doc = json.loads(body)
if doc.get("status") != "success":
    sys.exit("prometheus: %s: %s" % (doc.get("errorType"), doc.get("error")))
data = doc["data"]
def labels(m):
    for k, v in m.items():
        if any(c in k + v for c in "\t\n\x1f"):
            sys.exit("label with a tab, newline or \\x1f: %r=%r" % (k, v))
    return "\x1f".join("%s=%s" % kv for kv in sorted(m.items()))
if endpoint == "query":
    if data["resultType"] != "vector":
        sys.exit("not a vector: " + data["resultType"])
    for r in data["result"]:
        print(labels(r["metric"]) + "\t" + r["value"][1])
elif endpoint == "series":
    for m in data:
        print(labels(m))
elif endpoint == "targets":
    for t in data["activeTargets"]:
        print("%s\t%s\t%s" % (t["scrapeUrl"], t["health"], t["lastError"]))
"#;

type Labels = BTreeMap<String, String>;
type Values = BTreeMap<(String, String), f64>;

/// One sample of an instant query.
#[derive(Debug, Clone)]
struct Sample {
    labels: Labels,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

fn parse_labels(s: &str) -> Labels {
    s.split('\x1f')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("label k=v");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `endpoint` of the API at `base` from inside `ns`;
/// stdout, or the error.
fn api(ns: &Netns, base: &str, endpoint: &str, arg: &str) -> Result<String, String> {
    let out = ns.exec("python3", &["-c", API_PY, base, endpoint, arg]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

/// An instant query; panics if Prometheus refuses it.
fn query(ns: &Netns, promql: &str) -> Vec<Sample> {
    let out = api(ns, PROM, "query", promql).unwrap_or_else(|e| panic!("query {promql}: {e}"));
    out.lines()
        .map(|line| {
            let (labels, value) = line.split_once('\t').expect("labels\\tvalue");
            Sample {
                labels: parse_labels(labels),
                value: value
                    .parse()
                    .unwrap_or_else(|e| panic!("value {value:?} of {promql}: {e}")),
            }
        })
        .collect()
}

/// A query's samples keyed by (tcpconns, type) label values.
fn by_series(samples: &[Sample]) -> Values {
    let mut out = Values::new();
    for s in samples {
        let key = (s.label("tcpconns").to_string(), s.label("type").to_string());
        assert!(out.insert(key.clone(), s.value).is_none(), "{key:?} twice");
    }
    out
}

/// A query's samples keyed by the tcpconns label value only.
fn by_port(samples: &[Sample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let key = s.label("tcpconns").to_string();
        assert!(out.insert(key.clone(), s.value).is_none(), "{key} twice");
    }
    out
}

/// Debian's Prometheus server inside a namespace, its storage, config and
/// output in a scratch directory; stopped (SIGTERM, SIGKILL after 5 s) and
/// waited for when dropped.
struct Prometheus {
    child: RefCell<Child>,
    dir: TempDir,
}

impl Prometheus {
    /// `config` is written as `prometheus.yml` next to copies of `files`.
    fn start(ns: &Netns, config: &str, files: &[&Path]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let conf = dir.path().join("prometheus.yml");
        fs::write(&conf, config).expect("write prometheus.yml");
        for f in files {
            fs::copy(f, dir.path().join(f.file_name().unwrap())).expect("copy next to config");
        }
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("create log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "/usr/bin/prometheus"])
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("cannot start /usr/bin/prometheus (ci/setup.sh installs it)");
        Prometheus {
            child: RefCell::new(child),
            dir,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn running(&self) -> bool {
        let mut child = self.child.borrow_mut();
        child.try_wait().expect("wait for prometheus").is_none()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = terminate(
            &mut self.child.borrow_mut(),
            "prometheus",
            Duration::from_secs(5),
        );
    }
}

/// (accept queue, backlog) summed over the listeners on each of `ports`
/// that has any, as `ss -Hltn` shows them (Recv-Q, Send-Q).
fn ss_queues(ns: &Netns, ports: &[u16]) -> (Values, String) {
    let out = ns.exec("ss", &["-Hltn"]);
    assert!(out.status.success(), "ss -Hltn: {}", text(&out));
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut want = Values::new();
    for line in raw.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = ss_port(f[3]).expect("ss local address");
        if !ports.contains(&port) {
            continue;
        }
        let key = |which: &str| (format!("{port}-local"), which.to_string());
        let num = |s: &str| s.parse::<f64>().expect("ss queue number");
        *want.entry(key("accept")).or_default() += num(f[1]);
        *want.entry(key("accept_limit")).or_default() += num(f[2]);
    }
    (want, raw)
}

/// The ```promql blocks of docs/prometheus.md, trimmed.
fn doc_queries() -> Vec<String> {
    let doc = fs::read_to_string(repo().join("docs/prometheus.md")).expect("docs/prometheus.md");
    doc.split("```promql\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().trim().to_string())
        .collect()
}

/// Every `expr` of the Grafana dashboard (python3 parses the JSON).
fn grafana_exprs() -> Vec<String> {
    let path = repo().join("docs/grafana/tcpconns-prometheus.json");
    let script = "import json,sys\n\
        def walk(x):\n\
        \x20   if isinstance(x, dict):\n\
        \x20       for k, v in x.items():\n\
        \x20           if k == 'expr': print(json.dumps(v))\n\
        \x20           else: walk(v)\n\
        \x20   elif isinstance(x, list):\n\
        \x20       for v in x: walk(v)\n\
        walk(json.load(open(sys.argv[1])))\n";
    let out = checked(Command::new("python3").arg("-c").arg(script).arg(&path));
    out.lines()
        .map(|l| {
            // A JSON string of PromQL: only \" and \\ escapes occur.
            let inner = l.strip_prefix('"').and_then(|l| l.strip_suffix('"'));
            let inner = inner.unwrap_or_else(|| panic!("expr is not a string: {l}"));
            assert!(!inner.contains("\\u"), "unexpected escape in {l}");
            inner.replace("\\\"", "\"").replace("\\\\", "\\")
        })
        .collect()
}

/// Waits until `done` holds for Prometheus' answers; panics with the logs.
fn wait_prom(
    what: &str,
    prom: &Prometheus,
    collectd: &Collectd,
    done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    wait_until(what, Duration::from_secs(60), done, || {
        format!(
            "{}\n--- prometheus log ---\n{}\n--- collectd log ---\n{}",
            context(),
            prom.log(),
            collectd.log()
        )
    });
}

/// With `TCPCONNS_PROM_RECORD=<dir>`, writes `text` to `<dir>/<name>`
/// (what docs/prometheus.md pastes; docs/prometheus/record.sh).
fn record(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("TCPCONNS_PROM_RECORD") {
        let dir = Path::new(&dir);
        fs::create_dir_all(dir).expect("create record dir");
        fs::write(dir.join(name), text).expect("write record");
        eprintln!("recorded {}", dir.join(name).display());
    }
}

/// Records what an operator would look at: the exporter's tcpconns lines
/// (curl), the targets, each doc query and ALERTS through `promtool query
/// instant`, and the listeners as `ss -ltn` shows them.
fn record_queries(ns: &Netns) {
    if std::env::var_os("TCPCONNS_PROM_RECORD").is_none() {
        return;
    }
    let metrics =
        checked(Command::new("ip").args(["netns", "exec", ns.name(), "curl", "-sS", EXPORTER]));
    let tcpconns: String = metrics
        .lines()
        .filter(|l| l.contains("tcpconns"))
        .map(|l| format!("{l}\n"))
        .collect();
    record(
        "metrics.txt",
        &format!("$ curl -s {EXPORTER} | grep tcpconns\n{tcpconns}"),
    );
    let targets = api(ns, PROM, "targets", "").expect("targets");
    record("targets.txt", &targets);
    let mut queries = String::new();
    for q in DOC_QUERIES.iter().chain(&["ALERTS"]) {
        let out = ns.exec("promtool", &["query", "instant", PROM, q]);
        assert!(out.status.success(), "promtool query {q}: {}", text(&out));
        queries += &format!("$ promtool query instant {PROM} '{q}'\n{}\n", text(&out));
    }
    record("queries.txt", &queries);
    record(
        "ss-ltn.txt",
        &format!("$ ss -ltn\n{}", text(&ns.exec("ss", &["-ltn"]))),
    );
}

#[test]
fn prometheus_scrapes_every_value_of_the_population_and_the_doc_queries_hold() {
    require_root!("make a network namespace and run collectd and Prometheus in it");
    let rules = repo().join("docs/prometheus/tcpconns-rules.yml");
    let out = checked(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules),
    );
    assert!(out.contains("SUCCESS: 2 rules found"), "{out}");
    record(
        "check-rules.txt",
        &format!("$ promtool check rules docs/prometheus/tcpconns-rules.yml\n{out}"),
    );

    // The doc's queries are exactly the ones checked below, and the
    // dashboard uses only those.
    let doc: BTreeSet<String> = doc_queries().into_iter().collect();
    let ours: BTreeSet<String> = DOC_QUERIES.iter().map(|q| q.to_string()).collect();
    assert_eq!(doc, ours, "the ```promql blocks of docs/prometheus.md");
    let exprs = grafana_exprs();
    assert!(!exprs.is_empty(), "no expr in the Grafana dashboard");
    for e in &exprs {
        assert!(ours.contains(e), "Grafana query not in the doc: {e}");
    }

    let ns = Netns::new("prom");
    // write_prometheus resolves its address with AI_ADDRCONFIG: with only
    // 127.0.0.1 in the namespace it cannot listen (see the test below).
    checked(Command::new("ip").args(["-n", ns.name(), "addr", "add", "127.0.0.2/8", "dev", "lo"]));

    let mut pop = Population::new(&ns);
    pop.listen_v4(22)
        .established(22, 2, Family::V4)
        .listen_dual(443)
        .established(443, 3, Family::Mapped)
        .established(443, 2, Family::V6)
        .close_wait_pairs(443, 1)
        .listen_v4(5432)
        .established(5432, 3, Family::V4)
        .listen_v6(8080)
        .established(8080, 1, Family::V6)
        .close_wait_pairs(8080, 2);
    // An accept queue over its limit (a backlog of 4 holds 5) and one at a
    // quarter of it.
    pop.queued(7000, 4, 5).queued(7001, 8, 2);
    // Last, as TIME_WAIT lasts 60 s.
    pop.time_wait(443, 3);
    pop.settle(&ns);

    let sel = Selection {
        local: vec![22, 443, 7000, 7001, 8080, 9999],
        remote: vec![443, 5432],
        ..Selection::default()
    };
    let block =
        "<Plugin tcpconns>\n  ListeningPorts false\n  LocalPort 22 443 7000 7001 8080 9999\n  \
                 RemotePort 443 5432\n  AcceptQueue true\n</Plugin>";
    let cdir = TempDir::new("prom-collectd");
    let conf = Conf::new(cdir.path(), HOST, 1.0)
        .tcpconns(Plugin::Ours)
        .block(block)
        .block(&format!(
            "Include \"{}\"",
            repo().join("collectd.d/prometheus.conf").display()
        ));
    let launch = Launch {
        netns: Some(ns.name()),
        ..Launch::default()
    };
    let mut collectd = Collectd::start(cdir, &conf, &launch);
    collectd.wait_log("write_prometheus listening", Duration::from_secs(15), |l| {
        l.contains("write_prometheus plugin: Listening on [0.0.0.0]:9103.")
    });

    // The documented Prometheus config, every 1 s instead of 10 s.
    let config = fs::read_to_string(repo().join("docs/prometheus/prometheus.yml")).unwrap();
    for key in ["scrape_interval: 10s", "evaluation_interval: 10s"] {
        assert!(config.contains(key), "prometheus.yml has no {key}");
    }
    let config = config.replace(": 10s", ": 1s");
    let prom = Prometheus::start(&ns, &config, &[&rules]);
    wait_prom(
        "target up",
        &prom,
        &collectd,
        || {
            assert!(prom.running(), "prometheus exited:\n{}", prom.log());
            api(&ns, PROM, "targets", "").is_ok_and(|t| t.contains("/metrics\tup\t"))
        },
        || format!("targets: {:?}", api(&ns, PROM, "targets", "")),
    );

    // Every series, once each has been scraped, is exactly the population's.
    let want = expected_values(&pop.expected, &sel);
    let queue_ports = [22, 443, 7000, 7001, 8080, 9999];
    let (want_queues, ss_raw) = ss_queues(&ns, &queue_ports);
    assert_eq!(want_queues.len(), 10, "5 ports listen:\n{ss_raw}");
    assert_eq!(want_queues[&("7000-local".into(), "accept".into())], 5.0);
    assert_eq!(
        want_queues[&("7000-local".into(), "accept_limit".into())],
        4.0
    );
    assert_eq!(want_queues[&("7001-local".into(), "accept".into())], 2.0);
    assert_eq!(
        want_queues[&("7001-local".into(), "accept_limit".into())],
        8.0
    );
    let all_there = |want: &Values, q: &str| {
        let got = by_series(&query(&ns, q));
        want.keys().all(|k| got.contains_key(k))
    };
    wait_prom(
        "every series in Prometheus",
        &prom,
        &collectd,
        || all_there(&want, EVERY) && all_there(&want_queues, QUEUES),
        || format!("{:?}", by_series(&query(&ns, EVERY)).keys()),
    );
    let log = collectd.log();
    assert_values("Prometheus", &by_series(&query(&ns, EVERY)), &want, &log);
    assert_values(
        "Prometheus accept queues vs ss -ltn",
        &by_series(&query(&ns, QUEUES)),
        &want_queues,
        &format!("{log}\nss -Hltn:\n{ss_raw}"),
    );

    // Labels: exactly the documented ones.
    let series = api(&ns, PROM, "series", r#"{__name__=~"collectd_tcpconns_.+"}"#).unwrap();
    let series: Vec<Labels> = series.lines().map(parse_labels).collect();
    assert_eq!(series.len(), want.len() + want_queues.len());
    for s in &series {
        let names: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "__name__",
                "exported_instance",
                "instance",
                "job",
                "tcpconns",
                "type"
            ],
            "{s:?}"
        );
        assert_eq!(s["exported_instance"], HOST);
        assert_eq!(s["instance"], "127.0.0.1:9103");
        assert_eq!(s["job"], "collectd");
    }

    // The doc's queries on this population.
    let port_443: Values = want
        .iter()
        .filter(|((p, _), _)| p == "443-local")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(port_443.len(), 11);
    assert_values(
        "one port",
        &by_series(&query(&ns, ONE_PORT)),
        &port_443,
        &log,
    );
    let est: Values = want
        .iter()
        .filter(|((_, t), _)| t == "ESTABLISHED")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_values(
        "ESTABLISHED",
        &by_series(&query(&ns, ESTABLISHED)),
        &est,
        &log,
    );
    let share = |want: &Values| -> BTreeMap<String, f64> {
        let mut total: BTreeMap<String, f64> = BTreeMap::new();
        for ((p, _), v) in want {
            *total.entry(p.clone()).or_default() += v;
        }
        total
            .into_iter()
            .filter(|(_, t)| *t > 0.0)
            .map(|(p, t)| {
                let tw = want[&(p.clone(), "TIME_WAIT".to_string())];
                (p, tw / t)
            })
            .collect()
    };
    let tw_share = share(&want);
    assert_eq!(tw_share["443-remote"], 3.0 / 9.0, "{tw_share:?}");
    assert!(!tw_share.contains_key("9999-local"), "nothing on 9999");
    assert_eq!(by_port(&query(&ns, TIME_WAIT_SHARE)), tw_share);
    let ratio: BTreeMap<String, f64> = want_queues
        .iter()
        .filter(|((_, t), _)| t == "accept")
        .map(|((p, _), v)| {
            (
                p.clone(),
                v / want_queues[&(p.clone(), "accept_limit".into())],
            )
        })
        .collect();
    assert_eq!(ratio["7000-local"], 1.25);
    assert_eq!(ratio["7001-local"], 0.25);
    assert_eq!(by_port(&query(&ns, ACCEPT_RATIO)), ratio);
    let growing = query(&ns, CLOSE_WAIT_GROWS);
    assert!(growing.is_empty(), "nothing grew yet: {growing:?}");

    // An application stops closing: two more CLOSE_WAIT on 8080.
    pop.close_wait_pairs(8080, 2);
    let want = expected_values(&pop.expected, &sel);
    let close_wait_8080 =
        r#"collectd_tcpconns_tcp_connections{tcpconns="8080-local",type="CLOSE_WAIT"}"#;
    wait_prom(
        "4 CLOSE_WAIT on 8080 in Prometheus",
        &prom,
        &collectd,
        || query(&ns, close_wait_8080).first().map(|s| s.value) == Some(4.0),
        || format!("{:?}", query(&ns, close_wait_8080)),
    );
    assert_values("after", &by_series(&query(&ns, EVERY)), &want, &log);
    let growing = query(&ns, CLOSE_WAIT_GROWS);
    assert_eq!(growing.len(), 1, "{growing:?}");
    assert_eq!(growing[0].label("tcpconns"), "8080-local", "{growing:?}");
    assert!(growing[0].value >= 2.0, "{growing:?}");
    assert_eq!(by_port(&query(&ns, TIME_WAIT_SHARE)), share(&want));

    // The alerting rules, loaded by this Prometheus: both go pending (they
    // fire after their `for`), each for the one port it is about.
    let alerts = || -> BTreeSet<(String, String, String)> {
        query(&ns, "ALERTS")
            .iter()
            .map(|s| {
                let l = |n: &str| s.label(n).to_string();
                (l("alertname"), l("tcpconns"), l("alertstate"))
            })
            .collect()
    };
    let want_alerts: BTreeSet<(String, String, String)> = [
        ("TcpconnsAcceptQueueFull", "7000-local"),
        ("TcpconnsCloseWaitGrowing", "8080-local"),
    ]
    .iter()
    .map(|(a, p)| (a.to_string(), p.to_string(), "pending".to_string()))
    .collect();
    wait_prom(
        "both alerts pending",
        &prom,
        &collectd,
        || alerts().is_superset(&want_alerts),
        || format!("ALERTS: {:?}", alerts()),
    );
    assert_eq!(alerts(), want_alerts);

    record_queries(&ns);
    assert!(prom.running(), "{}", prom.log());
    assert!(collectd.exited().is_none(), "{}", collectd.log());
    // write_prometheus of collectd 5.12 logs one harmless line at error
    // level on every start ("MHD_OPTION_EXTERNAL_LOGGER is not the first
    // option"); nothing else may be an error.
    let log = collectd.log();
    record("collectd.log", &log);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[error]") && !l.contains("MHD_OPTION_EXTERNAL_LOGGER"))
        .collect();
    assert!(errors.is_empty(), "{log}");
}

/// The trap the doc warns about: in a namespace whose only address is
/// 127.0.0.1, write_prometheus cannot open its socket (AI_ADDRCONFIG finds
/// no configured address); one more address on lo is enough.
#[test]
fn write_prometheus_in_a_namespace_needs_a_second_address_on_lo() {
    require_root!();
    let ns = Netns::new("promtrap");
    let launch = Launch {
        netns: Some(ns.name()),
        ..Launch::default()
    };
    let start = || {
        let dir = TempDir::new("promtrap");
        let conf = Conf::new(dir.path(), HOST, 3600.0).block(&format!(
            "Include \"{}\"",
            repo().join("collectd.d/prometheus.conf").display()
        ));
        Collectd::start(dir, &conf, &launch)
    };
    let mut c = start();
    c.wait_log("write_prometheus failing", Duration::from_secs(15), |l| {
        l.contains("write_prometheus plugin: Opening a listening socket for [::]:9103 failed.")
            && l.contains("Initialization of plugin `write_prometheus' failed")
    });
    let before = c.log();
    drop(c);
    checked(Command::new("ip").args(["-n", ns.name(), "addr", "add", "127.0.0.2/8", "dev", "lo"]));
    let mut c = start();
    c.wait_log("write_prometheus listening", Duration::from_secs(15), |l| {
        l.contains("write_prometheus plugin: Listening on [0.0.0.0]:9103.")
    });
    ns.wait_sockets("a listener on 9103", |socks| {
        socks
            .iter()
            .any(|s| s.local == 9103 && s.state == TCP_LISTEN)
    });
    assert!(!c.log().contains("failed"), "{}", c.log());
    let prom_lines = |log: &str| -> String {
        log.lines()
            .filter(|l| l.contains("write_prometheus"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    record(
        "trap.txt",
        &format!(
            "lo: 127.0.0.1 only\n{}\nlo: 127.0.0.1 and 127.0.0.2/8\n{}",
            prom_lines(&before),
            prom_lines(&c.log())
        ),
    );
}
