#!/usr/bin/env python3
"""Writes a large synthetic domain twice into a scratch workspace, for compile-time measurements.

    python3 scripts/gen_domain.py [--aggregates N] [OUT]   # default: 5, target/compile-bench/domain

- `macro_domain`: written with this project's macros (`#[derive(Event)]`, `#[derive(EventEnum)]`,
  `#[derive(Command)]`, `#[aggregate]`);
- `hand_domain`: the same domain implementing the same runtime traits by hand (`Event` with
  `decode_stored`/`history`, `EventEnum` with `decode -> Decoded`, `Command`, `Aggregate`),
  like the "what the macros expand to" example of the `cqrs-runtime` crate docs, minus the
  compile-time checks and the shape fingerprints (a hand writer has neither: `fingerprint: 0`).

Both: 100 current event structs, 20 of them with 3 versions chained with `From` steps (140
structs in all), 50 commands, 5 aggregates and 5 projections (a sum per id over each
aggregate's 20 events: `#[projection]` with an `#[on]` handler per event, or `Projection`
implemented by hand with a `match`). Each aggregate lives in `src/agg<k>.rs`; the
line marked `BENCH-EDIT` in `agg0.rs` is the one-line change of the incremental measurement.
Nothing here is committed: the output goes under `target/`.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 100 current events (20 of them with 3 versions) and 50 commands, spread over the aggregates.
# 5 aggregates, 20 events each, as the issue asks (an earlier 16-variant limit of the enum's
# name checks is gone). The 5 read models fold over the 5 aggregates.
TOTAL_EVENTS, TOTAL_VERSIONED, TOTAL_COMMANDS, PROJECTIONS = 100, 20, 50, 5
AGGREGATES = 5


def spread(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def layout(aggregates):
    global AGGREGATES, EVENTS, VERSIONED, COMMANDS
    AGGREGATES = aggregates
    EVENTS = spread(TOTAL_EVENTS, aggregates)
    VERSIONED = spread(TOTAL_VERSIONED, aggregates)
    COMMANDS = spread(TOTAL_COMMANDS, aggregates)


layout(AGGREGATES)


def fields(version, versions):
    """Fields of version `version` of an event with `versions` versions."""
    out = [("id", "String"), ("amount", "i64")]
    if versions == 1 or version >= 2:
        out.append(("note", "String"))
    if versions == 3 and version == 3:
        out.append(("flag", "bool"))
    return out


def struct_name(k, j, version, versions):
    base = f"A{k}E{j}"
    return base if version == versions else f"{base}V{version}"


def versions_of(j, k=None):
    return 3 if j < VERSIONED[CURRENT[0]] else 1


CURRENT = [0]  # the aggregate being written


def struct_body(name, flds):
    body = "".join(f"    pub {f}: {t},\n" for f, t in flds)
    return f"pub struct {name} {{\n{body}}}\n"


def step(k, j, v, versions):
    """`From` step from version v to v+1."""
    src, dst = struct_name(k, j, v, versions), struct_name(k, j, v + 1, versions)
    new = [f for f in fields(v + 1, versions) if f not in fields(v, versions)]
    extra = "".join(
        f"            {f}: {'String::new()' if t == 'String' else 'false'},\n" for f, t in new
    )
    keep = "".join(f"            {f}: old.{f},\n" for f, _ in fields(v, versions))
    return (
        f"impl From<{src}> for {dst} {{\n    fn from(old: {src}) -> Self {{\n"
        f"        {dst} {{\n{keep}{extra}        }}\n    }}\n}}\n\n"
    )


def new_event(k, j):
    """An expression building the current version of event j from `cmd`."""
    flds = fields(versions_of(j), versions_of(j))
    vals = {"id": "cmd.id", "amount": "cmd.amount", "note": "String::new()", "flag": "true"}
    inner = ", ".join(f"{f}: {vals[f]}" for f, _ in flds)
    return f"A{k}E{j} {{ {inner} }}"


def guard(k, c):
    # The one-line change of the incremental rebuild toggles this literal.
    mark = " // BENCH-EDIT" if (k, c) == (0, 0) else ""
    return f"        if cmd.amount < 0 {{{mark}\n            return Err(A{k}Error(cmd.amount));\n        }}\n"


HEADER_MACRO = "use cqrs_runtime::prelude::*;\nuse serde::{Deserialize, Serialize};\n\n"
HEADER_HAND = (
    "use cqrs_runtime::aggregate::{Aggregate, Command, CreationPolicy, Events};\n"
    "use cqrs_runtime::event::{\n    DecodeError, Decoded, EncodedEvent, Event, EventEnum, EventSchema, FieldSchema,\n"
    "    decode_payload,\n};\n"
    "use serde::{Deserialize, Serialize};\n\n"
)


def macro_aggregate(k):
    CURRENT[0] = k
    out = [HEADER_MACRO]
    for j in range(EVENTS[k]):
        n = versions_of(j)
        for v in range(1, n + 1):
            name = struct_name(k, j, v, n)
            up = f", upcast_from = {struct_name(k, j, v - 1, n)}" if v > 1 else ""
            out.append("#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]\n")
            out.append(f'#[event(name = "a{k}_e{j}", version = {v}{up})]\n')
            out.append(struct_body(name, fields(v, n)) + "\n")
        for v in range(1, n):
            out.append(step(k, j, v, n))
    out.append("#[derive(Debug, Clone, PartialEq, EventEnum)]\n")
    out.append(f"pub enum A{k}Event {{\n")
    out += [f"    E{j}(A{k}E{j}),\n" for j in range(EVENTS[k])]
    out.append("}\n\n")
    for c in range(COMMANDS[k]):
        out.append(f"#[derive(Debug, Clone, Command)]\n#[command(aggregate = Agg{k})]\n")
        out.append(f"pub struct A{k}C{c} {{\n    #[id]\n    pub id: String,\n    pub amount: i64,\n}}\n\n")
    out.append(f'#[derive(Debug, Clone, PartialEq, thiserror::Error)]\n#[error("rejected: {{0}}")]\npub struct A{k}Error(pub i64);\n\n')
    out.append(f"#[derive(Debug, Default)]\npub struct Agg{k} {{\n    pub total: i64,\n    pub count: u64,\n}}\n\n")
    out.append(f'#[aggregate(name = "agg{k}", id = String, events = A{k}Event, error = A{k}Error)]\nimpl Agg{k} {{\n')
    for c in range(COMMANDS[k]):
        out.append(f"    #[command(any)]\n    fn c{c}(&self, cmd: A{k}C{c}) -> Result<A{k}E{2 * c}, A{k}Error> {{\n")
        out.append(guard(k, c).replace("\n        ", "\n            ").replace("        if", "        if", 1))
        out.append(f"        Ok({new_event(k, 2 * c)})\n    }}\n\n")
    for j in range(EVENTS[k]):
        out.append(f"    #[apply]\n    fn e{j}(&mut self, e: &A{k}E{j}) {{\n        self.total += e.amount;\n        self.count += 1;\n    }}\n\n")
    out.append("}\n")
    return "".join(out)


def hand_event_impl(k, j, v, n):
    name = struct_name(k, j, v, n)
    flds = fields(v, n)
    fs = ", ".join(f'FieldSchema {{ name: "{f}", ty: "{t}" }}' for f, t in flds)
    out = [f"impl Event for {name} {{\n"]
    out.append(f'    const NAME: &\'static str = "a{k}_e{j}";\n    const VERSION: u32 = {v};\n')
    out.append(
        f"    const SCHEMA: EventSchema = EventSchema {{\n        name: Self::NAME,\n        version: Self::VERSION,\n"
        f'        rust_type: "{name}",\n        fields: &[{fs}],\n        fingerprint: 0,\n    }};\n'
    )
    if v == n and n > 1:
        out.append("\n    fn decode_stored(name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {\n")
        out.append("        if name != Self::NAME {\n            return Err(DecodeError::UnknownEventType { name: name.to_owned() });\n        }\n")
        out.append("        match version {\n")
        for sv in range(n, 0, -1):
            expr = f"decode_payload::<{struct_name(k, j, sv, n)}>(name, version, payload)?"
            for up in range(sv + 1, n + 1):
                expr = f"{struct_name(k, j, up, n)}::from({expr})"
            out.append(f"            {sv} => Ok({expr}),\n")
        out.append(f"            _ => Err(DecodeError::UnknownVersion {{ name: name.to_owned(), version, known: {n} }}),\n        }}\n    }}\n")
        hist = ", ".join(f"{struct_name(k, j, sv, n)}::SCHEMA" for sv in range(1, n + 1))
        out.append(f"\n    fn history() -> Vec<EventSchema> {{\n        vec![{hist}]\n    }}\n")
    out.append("}\n\n")
    return "".join(out)


def hand_aggregate(k):
    CURRENT[0] = k
    out = [HEADER_HAND]
    for j in range(EVENTS[k]):
        n = versions_of(j)
        for v in range(1, n + 1):
            out.append("#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\n")
            out.append(struct_body(struct_name(k, j, v, n), fields(v, n)) + "\n")
            out.append(hand_event_impl(k, j, v, n))
        for v in range(1, n):
            out.append(step(k, j, v, n))
    ev = f"A{k}Event"
    out.append(f"#[derive(Debug, Clone, PartialEq)]\npub enum {ev} {{\n")
    out += [f"    E{j}(A{k}E{j}),\n" for j in range(EVENTS[k])]
    out.append("}\n\n")
    for j in range(EVENTS[k]):
        out.append(f"impl From<A{k}E{j}> for {ev} {{\n    fn from(e: A{k}E{j}) -> Self {{\n        Self::E{j}(e)\n    }}\n}}\n\n")
    names = ", ".join(f"A{k}E{j}::NAME" for j in range(EVENTS[k]))
    out.append(f"impl EventEnum for {ev} {{\n    const NAMES: &'static [&'static str] = &[{names}];\n\n")
    arms = lambda body: "".join(f"            Self::E{j}(e) => {body.format(j=j, k=k)},\n" for j in range(EVENTS[k]))
    out.append(f"    fn event_name(&self) -> &'static str {{\n        match self {{\n{arms('A{k}E{j}::NAME').replace('(e)', '(_)')}        }}\n    }}\n\n")
    out.append(f"    fn event_version(&self) -> u32 {{\n        match self {{\n{arms('A{k}E{j}::VERSION').replace('(e)', '(_)')}        }}\n    }}\n\n")
    out.append(f"    fn event_any(&self) -> &dyn std::any::Any {{\n        match self {{\n{arms('e')}        }}\n    }}\n\n")
    enc = "Ok(EncodedEvent {{ name: A{k}E{j}::NAME, version: A{k}E{j}::VERSION, payload: serde_json::to_vec(e)? }})"
    out.append(f"    fn encode(&self) -> Result<EncodedEvent, serde_json::Error> {{\n        match self {{\n{arms(enc)}        }}\n    }}\n\n")
    out.append("    fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Decoded<Self>, DecodeError> {\n        Ok(Decoded::One(match name {\n")
    for j in range(EVENTS[k]):
        out.append(f'            "a{k}_e{j}" => Self::E{j}(A{k}E{j}::decode_stored(name, version, payload)?),\n')
    out.append("            _ => return Err(DecodeError::UnknownEventType { name: name.to_owned() }),\n        }))\n    }\n\n")
    schemas = ", ".join(f"A{k}E{j}::SCHEMA" for j in range(EVENTS[k]))
    out.append(f"    fn schema() -> &'static [EventSchema] {{\n        const SCHEMA: &[EventSchema] = &[{schemas}];\n        SCHEMA\n    }}\n\n")
    out.append("    fn history() -> Vec<EventSchema> {\n        let mut all = Vec::new();\n")
    out += [f"        all.extend(A{k}E{j}::history());\n" for j in range(EVENTS[k])]
    out.append("        all\n    }\n}\n\n")
    for c in range(COMMANDS[k]):
        out.append(f"#[derive(Debug, Clone)]\npub struct A{k}C{c} {{\n    pub id: String,\n    pub amount: i64,\n}}\n\n")
    cmd = f"A{k}Command"
    out.append(f"#[derive(Debug, Clone)]\npub enum {cmd} {{\n")
    out += [f"    C{c}(A{k}C{c}),\n" for c in range(COMMANDS[k])]
    out.append("}\n\n")
    for c in range(COMMANDS[k]):
        out.append(f"impl From<A{k}C{c}> for {cmd} {{\n    fn from(c: A{k}C{c}) -> Self {{\n        Self::C{c}(c)\n    }}\n}}\n\n")
    out.append(f"impl Command for {cmd} {{\n    type Aggregate = Agg{k};\n\n    fn command_name(&self) -> &'static str {{\n        match self {{\n")
    out += [f'            Self::C{c}(_) => "A{k}C{c}",\n' for c in range(COMMANDS[k])]
    out.append("        }\n    }\n\n    fn aggregate_id(&self) -> &String {\n        match self {\n")
    out += [f"            Self::C{c}(c) => &c.id,\n" for c in range(COMMANDS[k])]
    out.append("        }\n    }\n}\n\n")
    out.append(f'#[derive(Debug, Clone, PartialEq, thiserror::Error)]\n#[error("rejected: {{0}}")]\npub struct A{k}Error(pub i64);\n\n')
    out.append(f"#[derive(Debug, Default)]\npub struct Agg{k} {{\n    pub total: i64,\n    pub count: u64,\n}}\n\n")
    out.append(f'impl Aggregate for Agg{k} {{\n    const TYPE: &\'static str = "agg{k}";\n    type Id = String;\n    type Event = {ev};\n')
    out.append(f"    type Command = {cmd};\n    type Error = A{k}Error;\n    type Services = ();\n\n")
    out.append(f"    fn apply(&mut self, event: &{ev}) {{\n        match event {{\n")
    out += [f"            {ev}::E{j}(e) => {{\n                self.total += e.amount;\n                self.count += 1;\n            }}\n" for j in range(EVENTS[k])]
    out.append("        }\n    }\n\n")
    out.append(f"    fn handle(\n        &self,\n        command: {cmd},\n        _: &(),\n    ) -> impl Future<Output = Result<Events<{ev}>, A{k}Error>> + Send {{\n        async move {{\n            match command {{\n")
    for c in range(COMMANDS[k]):
        g = guard(k, c).replace("        ", "                    ")
        out.append(f"                {cmd}::C{c}(cmd) => {{\n{g}                    Ok(Events::One({new_event(k, 2 * c)}.into()))\n                }}\n")
    out.append("            }\n        }\n    }\n\n")
    out.append(f"    fn creation_policy(_: &{cmd}) -> CreationPolicy {{\n        CreationPolicy::Any\n    }}\n}}\n")
    return "".join(out)


def projections(macro):
    """The 5 read models, one per aggregate, each a sum per id over all 20 of its events: with
    `#[projection]` and an `#[on]` handler per event, or with `Projection` implemented by hand
    (decode the enum, `match` the variants)."""
    out = ["//! Read models: a sum per id over each aggregate's events.\n\n#![allow(clippy::all)]\n\nuse std::collections::HashMap;\n\n"]
    out += [f"use crate::agg{k}::*;\n" for k in range(PROJECTIONS)]
    if macro:
        out.append("use cqrs_runtime::prelude::*;\n\n")
    else:
        out.append(
            "use cqrs_runtime::event::{DecodeError, EventEnum};\n"
            "use cqrs_runtime::projection::{EventMeta, Outcome, Projection};\n"
            "use cqrs_runtime::store::StoredEvent;\n\n"
        )
    for k in range(PROJECTIONS):
        CURRENT[0] = k
        ev = f"A{k}Event"
        out.append(f"#[derive(Debug, Default)]\npub struct Totals{k} {{\n    pub by_id: HashMap<String, i64>,\n    pub events: u64,\n}}\n\n")
        out.append(f"impl Totals{k} {{\n    fn add(&mut self, id: &str, amount: i64) {{\n")
        out.append("        *self.by_id.entry(id.to_owned()).or_default() += amount;\n        self.events += 1;\n    }\n}\n\n")
        if macro:
            out.append(f'#[projection(name = "totals{k}", events = {ev})]\nimpl Totals{k} {{\n')
            for j in range(EVENTS[k]):
                out.append(f"    #[on]\n    fn e{j}(&mut self, e: &A{k}E{j}) {{\n        self.add(&e.id, e.amount);\n    }}\n\n")
            out.append("}\n\n")
            continue
        out.append(f"impl Totals{k} {{\n    fn on(&mut self, event: &{ev}) {{\n        use {ev} as E;\n        match event {{\n")
        out += [f"            E::E{j}(e) => self.add(&e.id, e.amount),\n" for j in range(EVENTS[k])]
        out.append("        }\n    }\n}\n\n")
        out.append(
            f'impl Projection for Totals{k} {{\n    const NAME: &\'static str = "totals{k}";\n    const VERSION: u32 = 1;\n'
            f"    const HANDLED: &'static [&'static str] = <{ev} as EventEnum>::NAMES;\n    type Transaction = ();\n\n"
            "    fn project(\n        &mut self,\n        stored: &StoredEvent,\n        _: &EventMeta<'_>,\n        _: &mut (),\n"
            "    ) -> Result<Outcome, DecodeError> {\n"
            f"        let decoded = match <{ev} as EventEnum>::decode(&stored.event_type, stored.event_version, &stored.payload) {{\n"
            "            Err(DecodeError::UnknownEventType { .. }) => return Ok(Outcome::Foreign),\n"
            "            other => other?,\n        };\n"
            "        for event in decoded {\n            self.on(&event);\n        }\n        Ok(Outcome::Applied)\n    }\n\n"
            "    fn reset(&mut self) {\n        *self = Self::default();\n    }\n}\n\n"
        )
    return "".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def crate(out, name, aggregate):
    runtime = os.path.join(ROOT, "cqrs-runtime")
    write(
        os.path.join(out, name, "Cargo.toml"),
        f'[package]\nname = "{name}"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
        f'[dependencies]\ncqrs-runtime = {{ path = "{runtime}" }}\nserde = {{ version = "1", features = ["derive"] }}\n'
        'serde_json = "1"\nthiserror = "2"\n',
    )
    mods = "".join(f"pub mod agg{k};\n" for k in range(AGGREGATES))
    write(os.path.join(out, name, "src", "lib.rs"), f"//! Generated by scripts/gen_domain.py.\n#![allow(dead_code)]\n\n{mods}pub mod projections;\n")
    for k in range(AGGREGATES):
        write(os.path.join(out, name, "src", f"agg{k}.rs"), aggregate(k))
    write(os.path.join(out, name, "src", "projections.rs"), projections(aggregate is macro_aggregate))


def main():
    args = sys.argv[1:]
    if "--aggregates" in args:
        i = args.index("--aggregates")
        layout(int(args[i + 1]))
        del args[i : i + 2]
    out = args[0] if args else os.path.join(ROOT, "target", "compile-bench", "domain")
    write(
        os.path.join(out, "Cargo.toml"),
        '[workspace]\nmembers = ["macro_domain", "hand_domain", "serde_derive_only"]\nresolver = "3"\n'
        # CQRS_OPT_MACROS=1: compile every proc macro (ours and serde's alike) with
        # optimizations, as the README recommends for debug builds.
        + (
            "\n[profile.dev.build-override]\nopt-level = 3\n"
            if os.environ.get("CQRS_OPT_MACROS") == "1"
            else ""
        ),
    )
    crate(out, "macro_domain", macro_aggregate)
    crate(out, "hand_domain", hand_aggregate)
    # The dependency-cost baseline: a crate that depends on serde_derive alone.
    write(
        os.path.join(out, "serde_derive_only", "Cargo.toml"),
        '[package]\nname = "serde_derive_only"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
        '[dependencies]\nserde_derive = "1"\n',
    )
    write(os.path.join(out, "serde_derive_only", "src", "lib.rs"), "pub use serde_derive::Serialize;\n")
    lock = os.path.join(ROOT, "Cargo.lock")
    with open(lock) as f:  # start from the workspace's versions
        write(os.path.join(out, "Cargo.lock"), f.read())
    print(out)


if __name__ == "__main__":
    main()
