//! IP networks for `LocalNetwork`/`RemoteNetwork`. Addresses are held in
//! IPv6 form, IPv4 as `::ffff:a.b.c.d`, so IPv4, IPv6 and IPv4-mapped
//! sockets compare alike.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address in IPv6 form.
pub type Addr = [u8; 16];

/// An IPv4 address in IPv6 form.
pub fn mapped(v4: [u8; 4]) -> Addr {
    Ipv4Addr::from(v4).to_ipv6_mapped().octets()
}

/// A network such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Network {
    base: Addr,
    /// Prefix length in IPv6 form (IPv4 /8 is 104).
    bits: u8,
    v4: bool,
}

impl Network {
    /// Parses `ADDR/PREFIX` or a single `ADDR`; the address must have no
    /// bits set past the prefix, so `10.0.0.1/8` is refused, not guessed.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{addr}\" is not an IPv4 or IPv6 address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("prefix length {p} is more than {max}"))?,
            Some(p) => return Err(format!("prefix length \"{p}\" is not a number")),
        };
        let (base, bits, v4) = match ip {
            IpAddr::V4(a) => (mapped(a.octets()), prefix + 96, true),
            IpAddr::V6(a) => (a.octets(), prefix, false),
        };
        let net = Network { base, bits, v4 };
        if net.masked(&base) != base {
            let fixed = net.masked(&base);
            return Err(format!(
                "{text} has bits set past the prefix; the network is {}",
                Network { base: fixed, ..net }.display('/')
            ));
        }
        Ok(net)
    }

    fn masked(&self, addr: &Addr) -> Addr {
        let mut out = *addr;
        for (i, byte) in out.iter_mut().enumerate() {
            let keep = (usize::from(self.bits)).saturating_sub(i * 8).min(8);
            *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        out
    }

    /// Whether `addr` (IPv6 form) is in this network.
    pub fn contains(&self, addr: &Addr) -> bool {
        let full = usize::from(self.bits / 8);
        if addr[..full] != self.base[..full] {
            return false;
        }
        let rest = self.bits % 8;
        rest == 0 || (addr[full] ^ self.base[full]) >> (8 - rest) == 0
    }

    /// `10.0.0.0/8`, with `sep` in place of the slash (plugin instances use
    /// `_`: a slash would make a path in csv and rrd files).
    pub fn display(&self, sep: char) -> impl fmt::Display + '_ {
        Label(self, sep)
    }
}

struct Label<'a>(&'a Network, char);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Label(net, sep) = self;
        if net.v4 {
            let b = &net.base[12..];
            write!(
                f,
                "{}.{}.{}.{}{sep}{}",
                b[0],
                b[1],
                b[2],
                b[3],
                net.bits - 96
            )
        } else {
            write!(f, "{}{sep}{}", Ipv6Addr::from(net.base), net.bits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Addr {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn ipv4_networks_match_ipv4_and_mapped_sockets() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains(&mapped([10, 1, 2, 3])));
        assert!(n.contains(&v6("::ffff:10.1.255.255")));
        assert!(!n.contains(&mapped([10, 2, 0, 1])));
        assert!(!n.contains(&v6("10a::1")));
        assert_eq!(n.display('_').to_string(), "10.1.0.0_16");
        let host = Network::parse("127.0.0.3").unwrap();
        assert!(host.contains(&mapped([127, 0, 0, 3])) && !host.contains(&mapped([127, 0, 0, 2])));
        assert_eq!(host.display('/').to_string(), "127.0.0.3/32");
        let odd = Network::parse("127.0.0.0/30").unwrap();
        assert!((0..4).all(|i| odd.contains(&mapped([127, 0, 0, i]))));
        assert!(!odd.contains(&mapped([127, 0, 0, 4])));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains(&mapped([1, 2, 3, 4])));
    }

    #[test]
    fn ipv6_networks() {
        let n = Network::parse("fd00::/8").unwrap();
        assert!(n.contains(&v6("fd12::1")) && !n.contains(&v6("fe80::1")));
        assert_eq!(n.display('_').to_string(), "fd00::_8");
        let lo = Network::parse("::1").unwrap();
        assert!(lo.contains(&v6("::1")) && !lo.contains(&mapped([127, 0, 0, 1])));
        assert!(Network::parse("::/0")
            .unwrap()
            .contains(&mapped([1, 2, 3, 4])));
    }

    #[test]
    fn bad_networks_say_why() {
        for (text, why) in [
            (
                "10.0.0.1/8",
                "10.0.0.1/8 has bits set past the prefix; the network is 10.0.0.0/8",
            ),
            ("10.0.0.0/33", "prefix length 33 is more than 32"),
            ("fd00::/129", "prefix length 129 is more than 128"),
            ("10.0.0.0/", "prefix length \"\" is not a number"),
            ("10.0.0.0/x", "prefix length \"x\" is not a number"),
            ("10.0.0.0/-1", "prefix length \"-1\" is not a number"),
            ("10.0.0/8", "\"10.0.0\" is not an IPv4 or IPv6 address"),
            (
                "example.com",
                "\"example.com\" is not an IPv4 or IPv6 address",
            ),
            ("", "\"\" is not an IPv4 or IPv6 address"),
        ] {
            assert_eq!(Network::parse(text).unwrap_err(), why, "{text}");
        }
    }
}
