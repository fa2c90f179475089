//! Loads a customer stream written by last year's code (`examples/schema_evolution/last_year.json`:
//! old event versions, a renamed event, a split one, a retired one), replays it through
//! today's types, and prints what each stored event became.
//!
//! Run it with `cargo run --example schema_evolution`.

#[allow(dead_code)] // the domain also serves the tests
#[path = "schema_evolution/domain.rs"]
mod domain;

use cqrs_runtime::event::Decoded;
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::NewEvent;
use domain::{Customer, CustomerEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/schema_evolution/last_year.json"
    ))?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let store = InMemoryEventStore::new();
    let mut events = Vec::new();
    for row in &rows {
        let name = row["type"]
            .as_str()
            .ok_or("a row without a type")?
            .to_owned();
        let version = row["version"].as_u64().ok_or("a row without a version")? as u32;
        events.push(NewEvent::new(
            name,
            version,
            serde_json::to_vec(&row["payload"])?,
            Metadata::new(),
        ));
    }
    store
        .append("customer", "c-1", ExpectedVersion::NoStream, events)
        .await?;

    println!("== What each stored event became");
    let mut stepped = 0;
    for stored in store.read_stream("customer", "c-1", 1).await? {
        let (name, version) = (stored.event_type.as_str(), stored.event_version);
        let became = match CustomerEvent::decode(name, version, &stored.payload)? {
            Decoded::Skipped => "retired: skipped, never reaches the aggregate".to_owned(),
            Decoded::One(e) if (e.event_name(), e.event_version()) == (name, version) => {
                format!("{} v{} as stored", e.event_name(), e.event_version())
            }
            Decoded::One(e) => {
                stepped += 1;
                let how = if e.event_name() == name {
                    "upcast"
                } else {
                    "renamed"
                };
                format!("{how} to {} v{}", e.event_name(), e.event_version())
            }
            Decoded::Many(es) => {
                stepped += 1;
                let parts: Vec<String> = es
                    .iter()
                    .map(|e| format!("{} v{}", e.event_name(), e.event_version()))
                    .collect();
                format!("split into {}", parts.join(" + "))
            }
        };
        println!(
            "  #{:<2} {name} v{version}: {became}",
            stored.stream_version
        );
    }
    println!(
        "  {stepped} of {} stored events went through a typed step",
        rows.len()
    );

    println!("== Today's aggregate, replayed from last year's stream");
    let customer = Repository::<Customer, _>::new(store)
        .load(&"c-1".to_owned())
        .await?;
    println!("  version {}: {:#?}", customer.version, customer.state);

    println!("== The schema, for review (every stored shape this code decodes)");
    print!("{}", cqrs_runtime::event::describe::<CustomerEvent>());
    Ok(())
}
