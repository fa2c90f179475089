//! Arbitrary bytes to the generated decoders: `EventEnum::decode` of the schema-evolution domain
//! (upcast chains, fallible steps, a split, a rename, a retired name), and `Projection::project`
//! of two projections of its aggregate (one exhaustive, one `non_exhaustive`) in its own and in
//! other streams, return a value or a typed error for every input and never panic; `project`
//! refuses exactly the events of unknown type in the aggregate's streams and skips them
//! elsewhere; the projections' read filters leave out only events that `project` skips.
//!
//! Inputs: every (name, version) the enum knows plus unknown ones, with payloads that are
//! random bytes, or valid payloads of the stored shapes mutated byte by byte. The smoke run is
//! part of `cargo test`; the full run:
//!
//! ```sh
//! CQRS_FUZZ_INPUTS=1000000 cargo test --release --test decode_fuzz -- --nocapture
//! ```

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/schema_evolution/domain.rs"]
mod domain;

use std::panic::{AssertUnwindSafe, catch_unwind};

use cqrs_runtime::event::{DecodeError, EventEnum};
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{EventMeta, Outcome, Projection};
use cqrs_runtime::store::{Cursor, StoredEvent};
use domain::*;

/// Decides about every event of the customer stream.
#[derive(Default)]
pub struct Everything {
    seen: u64,
}

#[projection(
    name = "everything",
    events = Customer,
    ignore(OrderPlaced, ItemAdded, PaymentReceived, CreditAdjusted, TierSet, AddressChanged, CommentAdded, DiscountApplied)
)]
impl Everything {
    #[on]
    fn registered(&mut self, _: &Registered) {
        self.seen += 1;
    }
    #[on]
    fn renamed(&mut self, _: &NameChanged) {
        self.seen += 1;
    }
}

/// Handles two events and skips the rest.
#[derive(Default)]
pub struct Names {
    seen: u64,
}

#[projection(name = "names", events = Customer, non_exhaustive)]
impl Names {
    #[on]
    fn registered(&mut self, _: &Registered) {
        self.seen += 1;
    }
    #[on]
    fn renamed(&mut self, _: &NameChanged) {
        self.seen += 1;
    }
}

/// Projects one stored event with `P`, checking the rule of aggregate sources against the
/// enum's own decoding: an unknown type is an error in a `customer` stream, foreign elsewhere.
fn project<P: Projection<Transaction = ()> + Default>(stored: &StoredEvent) -> bool {
    let meta = EventMeta::new(stored, Cursor { tx: 0, position: 1 });
    let result = P::default().project(stored, &meta, &mut ());
    let unknown = matches!(
        CustomerEvent::decode(&stored.event_type, stored.event_version, &stored.payload),
        Err(DecodeError::UnknownEventType { .. })
    );
    match (&result, unknown, stored.stream_type == "customer") {
        (Err(DecodeError::UnknownEventType { .. }), true, true) => {}
        (Ok(Outcome::Foreign), true, false) => {}
        (_, true, _) => panic!("{}: unknown type gave {result:?}", P::NAME),
        (Err(DecodeError::UnknownEventType { .. }), false, _) => {
            panic!("{}: a known type was refused as unknown", P::NAME)
        }
        _ => {}
    }
    // The runner reads through the projection's filter: what it leaves out must be exactly
    // what `project` skips.
    let filter = P::filter().expect("a generated projection has a filter");
    assert!(filter.stream_types().iter().any(|t| t == "customer"));
    if !filter.matches_event(stored) {
        assert!(
            matches!(result, Ok(Outcome::Foreign)),
            "{}: the filter leaves out `{}` in `{}`, which `project` takes: {result:?}",
            P::NAME,
            stored.event_type,
            stored.stream_type
        );
    }
    result.is_ok()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"0.5",
    b"\"name\"",
    b"\"amount\"",
    b"\"delta\"",
    b"\"tier\"",
    b"\"level\"",
    b"\"lines\"",
    b"\\u0000",
    b"\xff",
    b"18446744073709551616",
    b"\"\"",
];

/// Valid payloads of stored shapes, to mutate.
const PAYLOADS: &[&[u8]] = &[
    br#"{"name":"Ann"}"#,
    br#"{"name":"Ann","email":null}"#,
    br#"{"order":"o-1","amount":5}"#,
    br#"{"order":"o-1","amount":5,"currency":"EUR"}"#,
    br#"{"sku":"s","qty":2,"note":"n"}"#,
    br#"{"amt":3}"#,
    br#"{"delta":-4}"#,
    br#"{"tier":"gold"}"#,
    br#"{"level":3}"#,
    br#"{"name":"N","address":"A"}"#,
    br#"{"text":"hi"}"#,
    br#"{"rate":10}"#,
    b"{}",
];

fn payload(rng: &mut Rng) -> Vec<u8> {
    if rng.below(3) == 0 {
        let len = rng.below(24);
        return (0..len)
            .flat_map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())].to_vec())
            .collect();
    }
    let mut bytes = PAYLOADS[rng.below(PAYLOADS.len())].to_vec();
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[i] = rng.next() as u8,
            1 => {
                bytes.remove(i);
            }
            _ => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(i..i, fragment.iter().copied());
            }
        }
    }
    bytes
}

#[test]
fn arbitrary_bytes_never_panic_the_decoder() {
    let inputs: u64 = std::env::var("CQRS_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut names: Vec<String> = CustomerEvent::history()
        .iter()
        .map(|s| s.name.to_owned())
        .collect();
    names.extend(
        [
            "newsletter_opted_in",
            "",
            "unknown",
            "customer_registered\0",
        ]
        .map(String::from),
    );
    let mut rng = Rng(0x0dec_0de5_eed5_f00d);
    let (mut decoded, mut refused, mut projected) = (0_u64, 0_u64, 0_u64);
    let started = std::time::Instant::now();
    for _ in 0..inputs {
        let name = &names[rng.below(names.len())];
        let version = match rng.below(8) {
            0 => 0,
            1 => u32::MAX,
            n => n as u32 - 1,
        };
        let bytes = payload(&mut rng);
        let stream_type = ["customer", "parcel", ""][rng.below(3)];
        let result = catch_unwind(AssertUnwindSafe(|| {
            let stored = StoredEvent {
                global_position: 1,
                stream_type: stream_type.into(),
                stream_id: "c-1".into(),
                stream_version: 1,
                event_id: uuid::Uuid::nil(),
                event_type: name.clone(),
                event_version: version,
                payload: bytes.clone(),
                metadata: Metadata::new(),
                recorded_at: chrono::DateTime::UNIX_EPOCH,
            };
            if project::<Everything>(&stored) & project::<Names>(&stored) {
                projected += 1;
            }
            CustomerEvent::decode(name, version, &bytes).is_ok()
        }));
        match result {
            Ok(true) => decoded += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "decode or project panicked (or broke the rule of aggregate sources) on ({name:?}, {version}, {stream_type:?} stream, {:?})",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    println!(
        "{inputs} inputs, 0 panics, {:.1?}: {decoded} decoded, {refused} refused with a typed error; {projected} projected by both projections",
        started.elapsed()
    );
    assert!(decoded > 0 && refused > 0, "the inputs reach both outcomes");
}
