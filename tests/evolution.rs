//! Schema evolution scenarios, replayed from committed golden payloads written by "older code":
//! add an optional field, add a required field, remove a field, rename a field, widen a type, a
//! fallible type change, split, rename an event type, retire an event type, a semantic change
//! with the same shape, and an unknown newer version.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/schema_evolution/domain.rs"]
mod domain;

use cqrs_runtime::event::{DecodeError, Decoded, describe};
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::EventMeta;
use cqrs_runtime::store::{Cursor, NewEvent};
use cqrs_runtime::testkit::assert_decodes_to;
use domain::*;

/// Appends the golden stream `file` to a fresh store as stream `customer/{id}`.
async fn load_golden(id: &str, file: &str) -> InMemoryEventStore {
    let text = std::fs::read_to_string(file).expect("golden file");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("golden json");
    let store = InMemoryEventStore::new();
    let events = rows
        .iter()
        .map(|row| {
            let payload = serde_json::to_vec(&row["payload"]).expect("payload");
            let name = row["type"].as_str().expect("type").to_owned();
            let version = row["version"].as_u64().expect("version") as u32;
            NewEvent::new(name, version, payload, Metadata::new())
        })
        .collect();
    store
        .append("customer", id, ExpectedVersion::NoStream, events)
        .await
        .expect("append golden");
    store
}

#[tokio::test]
async fn the_aggregate_replays_a_stream_of_every_version() {
    let store = load_golden("c-1", "examples/schema_evolution/last_year.json").await;
    let customers = Repository::<Customer, _>::new(store);
    let loaded = customers.load(&"c-1".to_owned()).await.expect("replay");
    assert_eq!(loaded.version, 14);
    let expected = Customer {
        name: "Ada L.".into(), // registered v1, then split details_changed
        email: None,           // added optional field
        address: "1 Analytical Way".into(),
        orders: vec![
            ("o-1".into(), 1200, "EUR".into()),
            ("o-2".into(), 300, "GBP".into()),
        ],
        items: vec![("tea".into(), 2)],         // removed field
        paid: 1200,                             // renamed field
        credit: -2_147_483_648 + 4_294_967_296, // widened type
        level: 3,                               // fallible conversion
        comments: vec!["prefers mornings".into(), "called back".into()], // renamed event type
        discount_bp: 750, // semantic change: v1's 5 % was 500 bp, then v2's 750
    };
    assert_eq!(loaded.state, expected);
}

/// Every event a projection sees over the mixed stream: (stream version, position, name).
#[derive(Debug, Default)]
struct Audit {
    seen: Vec<(u64, u64, &'static str)>,
}

impl Audit {
    fn note(&mut self, meta: &EventMeta<'_>, name: &'static str) {
        self.seen.push((meta.stream_version, meta.position, name));
    }
}

#[projection(name = "customer_audit", events = CustomerEvent)]
impl Audit {
    #[on]
    fn registered(&mut self, _: &Registered, meta: &EventMeta<'_>) {
        self.note(meta, "registered");
    }
    #[on]
    fn order_placed(&mut self, _: &OrderPlaced, meta: &EventMeta<'_>) {
        self.note(meta, "order_placed");
    }
    #[on]
    fn item_added(&mut self, _: &ItemAdded, meta: &EventMeta<'_>) {
        self.note(meta, "item_added");
    }
    #[on]
    fn payment_received(&mut self, _: &PaymentReceived, meta: &EventMeta<'_>) {
        self.note(meta, "payment_received");
    }
    #[on]
    fn credit_adjusted(&mut self, _: &CreditAdjusted, meta: &EventMeta<'_>) {
        self.note(meta, "credit_adjusted");
    }
    #[on]
    fn tier_set(&mut self, _: &TierSet, meta: &EventMeta<'_>) {
        self.note(meta, "tier_set");
    }
    #[on]
    fn name_changed(&mut self, _: &NameChanged, meta: &EventMeta<'_>) {
        self.note(meta, "name_changed");
    }
    #[on]
    fn address_changed(&mut self, _: &AddressChanged, meta: &EventMeta<'_>) {
        self.note(meta, "address_changed");
    }
    #[on]
    fn comment_added(&mut self, _: &CommentAdded, meta: &EventMeta<'_>) {
        self.note(meta, "comment_added");
    }
    #[on]
    fn discount_applied(&mut self, _: &DiscountApplied, meta: &EventMeta<'_>) {
        self.note(meta, "discount_applied");
    }
}

/// A projection that opts out of exhaustiveness still gets split and renamed events of the
/// types it handles.
#[derive(Debug, Default)]
struct Contact {
    address: String,
    comments: Vec<String>,
}

#[projection(name = "customer_contact", events = CustomerEvent, non_exhaustive)]
impl Contact {
    #[on]
    fn address_changed(&mut self, e: &AddressChanged) {
        self.address.clone_from(&e.address);
    }
    #[on]
    fn comment_added(&mut self, e: &CommentAdded) {
        self.comments.push(e.text.clone());
    }
}

#[tokio::test]
async fn projections_see_current_events_with_the_stored_positions() {
    let store = load_golden("c-1", "examples/schema_evolution/last_year.json").await;
    let audit = InMemoryReadModel::<Audit>::new();
    ProjectionRunner::new(store.clone(), audit.clone())
        .rebuild()
        .await
        .expect("rebuild");
    let seen = audit.read(|a| a.seen.clone());
    // The retired event (version 7) is gone; the split one (version 8) is two events that keep
    // the stored version and position; the renamed one (9) arrives under its new type.
    let versions: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 8, 8, 9, 10, 11, 12, 13, 14]
    );
    assert_eq!(seen[6], (8, 8, "name_changed"));
    assert_eq!(seen[7], (8, 8, "address_changed"));
    assert_eq!(seen[8], (9, 9, "comment_added"));

    let contact = InMemoryReadModel::<Contact>::new();
    ProjectionRunner::new(store, contact.clone())
        .rebuild()
        .await
        .expect("rebuild");
    let (address, comments) = contact.read(|c| (c.address.clone(), c.comments.clone()));
    assert_eq!(address, "1 Analytical Way");
    assert_eq!(
        comments,
        vec!["prefers mornings".to_owned(), "called back".to_owned()]
    );
}

/// A read model over the mixed stream, decoded by hand: what any reader of the log sees.
#[tokio::test]
async fn a_read_model_sees_current_events_with_the_stored_positions() {
    let store = load_golden("c-1", "examples/schema_evolution/last_year.json").await;
    let stored: Vec<_> = store
        .read_after(Cursor::START, 100)
        .await
        .expect("read")
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut seen: Vec<(u64, u64, &'static str)> = Vec::new();
    for row in &stored {
        for envelope in Envelope::<CustomerEvent>::decode(row).expect("decodes") {
            seen.push((
                envelope.stream_version,
                envelope.global_position,
                envelope.event.event_name(),
            ));
        }
    }
    // The retired event (version 7) is gone; the split one (version 8) is two events that keep
    // the stored version and position; the renamed one answers to its new name.
    let versions: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 8, 8, 9, 10, 11, 12, 13, 14]
    );
    assert_eq!(seen[6], (8, 8, "name_changed"));
    assert_eq!(seen[7], (8, 8, "address_changed"));
    assert_eq!(seen[8].2, "comment_added");
    let orders_by_currency = seen.iter().filter(|s| s.2 == "order_placed").count();
    assert_eq!(orders_by_currency, 2);
}

#[test]
fn each_old_version_decodes_to_its_current_value() {
    assert_decodes_to(
        "customer_registered",
        1,
        br#"{"name":"Ada"}"#,
        &CustomerEvent::Registered(Registered {
            name: "Ada".into(),
            email: None,
        }),
    );
    assert_decodes_to(
        "order_placed",
        1,
        br#"{"order":"o","amount":5}"#,
        &CustomerEvent::OrderPlaced(OrderPlaced {
            order: "o".into(),
            amount: 5,
            currency: "EUR".into(),
        }),
    );
    assert_decodes_to(
        "item_added",
        1,
        br#"{"sku":"s","qty":1,"note":"n"}"#,
        &CustomerEvent::ItemAdded(ItemAdded {
            sku: "s".into(),
            qty: 1,
        }),
    );
    assert_decodes_to(
        "payment_received",
        1,
        br#"{"amt":7}"#,
        &CustomerEvent::PaymentReceived(PaymentReceived { amount: 7 }),
    );
    assert_decodes_to(
        "credit_adjusted",
        1,
        br#"{"delta":-3}"#,
        &CustomerEvent::CreditAdjusted(CreditAdjusted { delta: -3 }),
    );
    assert_decodes_to(
        "tier_set",
        1,
        br#"{"tier":"silver"}"#,
        &CustomerEvent::TierSet(TierSet { level: 2 }),
    );
    assert_decodes_to(
        "customer_note_added",
        1,
        br#"{"text":"t"}"#,
        &CustomerEvent::CommentAdded(CommentAdded { text: "t".into() }),
    );
    assert_decodes_to(
        "discount_applied",
        1,
        br#"{"rate":5}"#,
        &CustomerEvent::DiscountApplied(DiscountApplied { rate: 500 }),
    );
}

#[test]
fn split_and_retired_events() {
    let split = CustomerEvent::decode("details_changed", 1, br#"{"name":"N","address":"A"}"#)
        .expect("split");
    assert_eq!(
        split,
        Decoded::Many(vec![
            CustomerEvent::NameChanged(NameChanged { name: "N".into() }),
            CustomerEvent::AddressChanged(AddressChanged {
                address: "A".into()
            }),
        ])
    );
    let retired =
        CustomerEvent::decode("newsletter_opted_in", 1, br#"{"anything":true}"#).expect("retired");
    assert_eq!(retired, Decoded::Skipped);
}

#[test]
fn a_failing_step_is_a_typed_error() {
    let err = CustomerEvent::decode("tier_set", 1, br#"{"tier":"platinum"}"#).unwrap_err();
    let DecodeError::UpcastFailed {
        name,
        version,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((name.as_str(), *version), ("tier_set", 1));
    assert_eq!(
        source.downcast_ref::<UnknownTier>(),
        Some(&UnknownTier("platinum".into()))
    );
}

#[test]
fn an_unknown_newer_version_is_a_typed_error() {
    let err = CustomerEvent::decode("order_placed", 3, br#"{}"#).unwrap_err();
    assert!(
        matches!(&err, DecodeError::UnknownVersion { name, version: 3, known: 2 } if name == "order_placed"),
        "{err:?}"
    );
    // Also for a name the event was renamed from: the old name's chain ends at version 1.
    let err = CustomerEvent::decode("customer_note_added", 2, br#"{}"#).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::UnknownVersion {
                version: 2,
                known: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn replay_errors_name_the_stream_version_and_position() {
    let store = load_golden("c-2", "examples/schema_evolution/last_year.json").await;
    let newer = NewEvent::new(
        "order_placed",
        3,
        br#"{"order":"o-3"}"#.to_vec(),
        Metadata::new(),
    );
    store
        .append("customer", "c-2", ExpectedVersion::Exact(14), vec![newer])
        .await
        .expect("append");
    let err = Repository::<Customer, _>::new(store)
        .load(&"c-2".to_owned())
        .await
        .unwrap_err();
    match err {
        CommandError::Decode {
            stream_type,
            stream_id,
            stream_version,
            global_position,
            source,
        } => {
            assert_eq!(
                (stream_type.as_str(), stream_id.as_str()),
                ("customer", "c-2")
            );
            assert_eq!((stream_version, global_position), (15, 15));
            assert!(matches!(
                source,
                DecodeError::UnknownVersion {
                    version: 3,
                    known: 2,
                    ..
                }
            ));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn the_schema_description_is_reviewable() {
    const GOLDEN: &str = "tests/evolution/golden/customer-schema.txt";
    let text = describe::<CustomerEvent>();
    if std::env::var_os("CQRS_BLESS").is_some() {
        std::fs::write(GOLDEN, &text).expect("write");
    }
    assert_eq!(
        text,
        std::fs::read_to_string(GOLDEN).expect("golden schema"),
        "bless with CQRS_BLESS=1"
    );
    assert!(text.contains("customer_registered v1"));
    assert!(text.contains("newsletter_opted_in retired"));
}
