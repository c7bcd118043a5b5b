//! One sock_diag dump with the plugin's own request and netlink code, and
//! nothing else: no collectd, no port table. `ci/bench.sh` times it to show
//! what the kernel alone costs for a request, the floor under any plugin.
//!
//!     bare_dump all                    every socket (the C plugin's request,
//!                                      on the plugin's socket: src/caps.rs)
//!     bare_dump ports LOCAL REMOTE     the filter for LocalPort/RemotePort
//!     ... info                         also ask for tcp_info, as
//!                                      ConnectionHealth does
//!
//! Prints the number of sockets the kernel sent.

use std::process::ExitCode;

use tcpconns::filter;
use tcpconns::netlink::Netlink;
use tcpconns::socket::Fields;
use tcpconns::source::ALL_STATES;

fn port(s: &str) -> Option<u16> {
    s.parse().ok().filter(|&p| p != 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let health = args.last() == Some(&"info");
    if health {
        args.pop();
    }
    let mut program = Vec::new();
    match args[..] {
        ["all"] => {}
        ["ports", local, remote] => {
            let (Some(local), Some(remote)) = (port(local), port(remote)) else {
                eprintln!("bare_dump: ports must be 1-65535: {local} {remote}");
                return ExitCode::from(2);
            };
            if !filter::build(&mut program, &[local], &[remote]) {
                eprintln!("bare_dump: no filter for ports {local} {remote}");
                return ExitCode::from(2);
            }
        }
        _ => {
            eprintln!("usage: bare_dump all [info] | bare_dump ports LOCAL REMOTE [info]");
            return ExitCode::from(2);
        }
    }
    let mut sockets = 0u64;
    let fields = Fields {
        health,
        ..Fields::default()
    };
    match Netlink::new(None, fields).dump(ALL_STATES, &program, &mut |_| sockets += 1) {
        Ok(_) => {
            println!("{sockets}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bare_dump: {err}");
            ExitCode::FAILURE
        }
    }
}
