//! TCP states as Linux numbers them, and the names collectd's tcpconns uses.

/// Number of TCP states the plugin reports (Linux states 1..=11).
pub const STATE_COUNT: usize = 11;

/// A TCP state in the range the plugin reports. Kernel states outside it
/// (`TCP_NEW_SYN_RECV`, `TCP_BOUND_INACTIVE`, future ones) have no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Closed = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

impl TcpState {
    /// Every state, in dispatch order (the C plugin's order: Linux numbering).
    pub const ALL: [TcpState; STATE_COUNT] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Closed,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// The state for a kernel state number, `None` outside 1..=11.
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        match n {
            1..=11 => Some(Self::ALL[usize::from(n) - 1]),
            _ => None,
        }
    }

    /// Position in a per-state count array.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// The type_instance collectd users already have in their dashboards.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Closed => "CLOSED",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// Bit for this state in inet_diag's `idiag_states` mask.
    pub fn mask(self) -> u32 {
        1 << (self as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_round_trip_and_outsiders_are_none() {
        for n in 1..=11u8 {
            let s = TcpState::from_kernel(n).expect("1..=11 are states");
            assert_eq!(s as u8, n);
            assert_eq!(s.index(), usize::from(n) - 1);
        }
        for n in [0u8, 12, 13, 0xff] {
            assert_eq!(TcpState::from_kernel(n), None);
        }
    }

    #[test]
    fn names_match_the_c_plugin_in_order() {
        let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names.join(" "),
            "ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSED \
             CLOSE_WAIT LAST_ACK LISTEN CLOSING"
        );
    }

    #[test]
    fn masks_match_the_kernel_bits() {
        assert_eq!(TcpState::Listen.mask(), 1 << 10);
        let all = TcpState::ALL.iter().fold(0, |m, s| m | s.mask());
        assert_eq!(all, 0xffe);
    }
}
