//! An event enum far larger than any one event's history: 40 variants.
#![allow(missing_docs, reason = "the 40 events are fixtures")]

use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_0", version = 1)]
pub struct E0 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_1", version = 1)]
pub struct E1 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_2", version = 1)]
pub struct E2 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_3", version = 1)]
pub struct E3 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_4", version = 1)]
pub struct E4 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_5", version = 1)]
pub struct E5 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_6", version = 1)]
pub struct E6 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_7", version = 1)]
pub struct E7 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_8", version = 1)]
pub struct E8 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_9", version = 1)]
pub struct E9 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_10", version = 1)]
pub struct E10 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_11", version = 1)]
pub struct E11 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_12", version = 1)]
pub struct E12 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_13", version = 1)]
pub struct E13 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_14", version = 1)]
pub struct E14 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_15", version = 1)]
pub struct E15 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_16", version = 1)]
pub struct E16 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_17", version = 1)]
pub struct E17 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_18", version = 1)]
pub struct E18 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_19", version = 1)]
pub struct E19 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_20", version = 1)]
pub struct E20 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_21", version = 1)]
pub struct E21 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_22", version = 1)]
pub struct E22 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_23", version = 1)]
pub struct E23 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_24", version = 1)]
pub struct E24 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_25", version = 1)]
pub struct E25 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_26", version = 1)]
pub struct E26 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_27", version = 1)]
pub struct E27 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_28", version = 1)]
pub struct E28 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_29", version = 1)]
pub struct E29 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_30", version = 1)]
pub struct E30 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_31", version = 1)]
pub struct E31 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_32", version = 1)]
pub struct E32 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_33", version = 1)]
pub struct E33 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_34", version = 1)]
pub struct E34 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_35", version = 1)]
pub struct E35 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_36", version = 1)]
pub struct E36 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_37", version = 1)]
pub struct E37 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_38", version = 1)]
pub struct E38 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "big_39", version = 1)]
pub struct E39 {
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum BigEvent {
    V0(E0),
    V1(E1),
    V2(E2),
    V3(E3),
    V4(E4),
    V5(E5),
    V6(E6),
    V7(E7),
    V8(E8),
    V9(E9),
    V10(E10),
    V11(E11),
    V12(E12),
    V13(E13),
    V14(E14),
    V15(E15),
    V16(E16),
    V17(E17),
    V18(E18),
    V19(E19),
    V20(E20),
    V21(E21),
    V22(E22),
    V23(E23),
    V24(E24),
    V25(E25),
    V26(E26),
    V27(E27),
    V28(E28),
    V29(E29),
    V30(E30),
    V31(E31),
    V32(E32),
    V33(E33),
    V34(E34),
    V35(E35),
    V36(E36),
    V37(E37),
    V38(E38),
    V39(E39),
}

#[test]
fn forty_variants_decode() {
    let d = BigEvent::decode("big_39", 1, br#"{"n":7}"#).unwrap();
    assert_eq!(d.one(), Some(BigEvent::V39(E39 { n: 7 })));
    assert_eq!(BigEvent::NAMES.len(), 40);
}
