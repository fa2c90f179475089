//! What every contender starts from: the same logical events (each contender stores them in its
//! own wire form) and the same command script (each contender builds its own command type).

/// One stored event, before a contender encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Logical {
    Opened(String),
    /// `bench_deposited` version 1: `{"amount":n}`, upcast on read (adds `"currency":"EUR"`).
    DepositedV1(i64),
    /// `bench_deposited` version 2: `{"amount":n,"currency":"EUR"}`.
    Deposited(i64),
    Withdrawn(i64),
}

impl Logical {
    /// This project's and the hand-written wire form: (name, version, JSON payload).
    pub fn wire(&self) -> (&'static str, u32, Vec<u8>) {
        match self {
            Logical::Opened(owner) => (
                "bench_opened",
                1,
                serde_json::to_vec(&serde_json::json!({ "owner": owner })).expect("json"),
            ),
            Logical::DepositedV1(n) => (
                "bench_deposited",
                1,
                format!(r#"{{"amount":{n}}}"#).into_bytes(),
            ),
            Logical::Deposited(n) => (
                "bench_deposited",
                2,
                format!(r#"{{"amount":{n},"currency":"EUR"}}"#).into_bytes(),
            ),
            Logical::Withdrawn(n) => (
                "bench_withdrawn",
                1,
                format!(r#"{{"amount":{n}}}"#).into_bytes(),
            ),
        }
    }
}

/// The stream id of aggregate number `i`.
pub fn stream_id(i: usize) -> String {
    format!("acc-{i}")
}

/// W1: one stream of `n` events: opened, then deposits alternating version 1 and version 2
/// (half of the stream needs one upcast).
pub fn w1_stream(n: usize) -> Vec<Logical> {
    (0..n)
        .map(|i| match i {
            0 => Logical::Opened("ann".into()),
            i if i % 2 == 1 => Logical::DepositedV1(i as i64),
            i => Logical::Deposited(i as i64),
        })
        .collect()
}

/// W3: `streams` streams of `per_stream` events each, interleaved round-robin in the global
/// log: opened, then every tenth a withdrawal, else deposits alternating version 1 and 2.
pub fn w3_log(streams: usize, per_stream: usize) -> Vec<(usize, Logical)> {
    let mut log = Vec::with_capacity(streams * per_stream);
    for round in 0..per_stream {
        for stream in 0..streams {
            let event = match round {
                0 => Logical::Opened(format!("owner-{stream}")),
                r if r % 10 == 0 => Logical::Withdrawn(1),
                r if r % 2 == 1 => Logical::DepositedV1(r as i64),
                r => Logical::Deposited(r as i64),
            };
            log.push((stream, event));
        }
    }
    log
}

/// One command of a script, addressed to aggregate number `.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Open(usize),
    Deposit(usize, i64),
    Withdraw(usize, i64),
}

/// W2/W4: `commands` commands round-robin over `aggregates` aggregates: each is opened first,
/// then deposits, every fifth command a withdrawal (some refused for want of balance) and every
/// 97th a deposit of 0 (refused).
pub fn script(commands: usize, aggregates: usize) -> Vec<Step> {
    (0..commands)
        .map(|i| {
            let a = i % aggregates;
            if i < aggregates {
                Step::Open(a)
            } else if i % 5 == 0 {
                Step::Withdraw(a, 40 + (i % 50) as i64)
            } else if i % 97 == 0 {
                Step::Deposit(a, 0)
            } else {
                Step::Deposit(a, (i % 100) as i64 + 1)
            }
        })
        .collect()
}

/// What a command script did: commands accepted and refused, summed balance (to check that the
/// contenders decided the same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: u64,
    pub rejected: u64,
    pub balance: i64,
}
