//! A customer ledger whose events went through every kind of schema change. Each old version
//! is frozen as its own struct; the current versions are the enum's variants.

use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// ---- add an optional field: customer_registered v1 -> v2 (email) --------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "customer_registered", version = 1)]
pub struct RegisteredV1 {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "customer_registered", version = 2, upcast_from = RegisteredV1)]
pub struct Registered {
    pub name: String,
    pub email: Option<String>,
}

impl From<RegisteredV1> for Registered {
    fn from(v1: RegisteredV1) -> Self {
        Registered {
            name: v1.name,
            email: None,
        }
    }
}

// ---- add a required field (the step supplies it): order_placed v1 -> v2 (currency) -------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_placed", version = 1)]
pub struct OrderPlacedV1 {
    pub order: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_placed", version = 2, upcast_from = OrderPlacedV1)]
pub struct OrderPlaced {
    pub order: String,
    pub amount: i64,
    pub currency: String,
}

impl From<OrderPlacedV1> for OrderPlaced {
    fn from(v1: OrderPlacedV1) -> Self {
        // Before v2 every order was in euros.
        OrderPlaced {
            order: v1.order,
            amount: v1.amount,
            currency: "EUR".into(),
        }
    }
}

// ---- remove a field: item_added v1 -> v2 (no more `note`) ---------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "item_added", version = 1)]
pub struct ItemAddedV1 {
    pub sku: String,
    pub qty: u32,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "item_added", version = 2, upcast_from = ItemAddedV1)]
pub struct ItemAdded {
    pub sku: String,
    pub qty: u32,
}

impl From<ItemAddedV1> for ItemAdded {
    fn from(v1: ItemAddedV1) -> Self {
        ItemAdded {
            sku: v1.sku,
            qty: v1.qty,
        }
    }
}

// ---- rename a field: payment_received v1 (amt) -> v2 (amount) -----------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "payment_received", version = 1)]
pub struct PaymentReceivedV1 {
    pub amt: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "payment_received", version = 2, upcast_from = PaymentReceivedV1)]
pub struct PaymentReceived {
    pub amount: i64,
}

impl From<PaymentReceivedV1> for PaymentReceived {
    fn from(v1: PaymentReceivedV1) -> Self {
        PaymentReceived { amount: v1.amt }
    }
}

// ---- widen a type: credit_adjusted v1 (i32) -> v2 (i64) -----------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "credit_adjusted", version = 1)]
pub struct CreditAdjustedV1 {
    pub delta: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "credit_adjusted", version = 2, upcast_from = CreditAdjustedV1)]
pub struct CreditAdjusted {
    pub delta: i64,
}

impl From<CreditAdjustedV1> for CreditAdjusted {
    fn from(v1: CreditAdjustedV1) -> Self {
        CreditAdjusted {
            delta: i64::from(v1.delta),
        }
    }
}

// ---- a fallible type change: tier_set v1 ("gold") -> v2 (level 3) --------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "tier_set", version = 1)]
pub struct TierSetV1 {
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "tier_set", version = 2, upcast_from = TierSetV1)]
pub struct TierSet {
    pub level: u8,
}

/// A v1 tier name that v2 has no level for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown tier `{0}`")]
pub struct UnknownTier(pub String);

impl TryFrom<TierSetV1> for TierSet {
    type Error = UnknownTier;

    fn try_from(v1: TierSetV1) -> Result<Self, UnknownTier> {
        let level = match v1.tier.as_str() {
            "bronze" => 1,
            "silver" => 2,
            "gold" => 3,
            _ => return Err(UnknownTier(v1.tier)),
        };
        Ok(TierSet { level })
    }
}

// ---- split: details_changed v1 -> name_changed + address_changed --------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "details_changed", version = 1)]
pub struct DetailsChangedV1 {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "name_changed", version = 1)]
pub struct NameChanged {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "address_changed", version = 1)]
pub struct AddressChanged {
    pub address: String,
}

impl cqrs_runtime::event::Split<CustomerEvent> for DetailsChangedV1 {
    fn split(self) -> Vec<CustomerEvent> {
        vec![
            NameChanged { name: self.name }.into(),
            AddressChanged {
                address: self.address,
            }
            .into(),
        ]
    }
}

// ---- rename an event type: customer_note_added -> comment_added ---------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "customer_note_added", version = 1)]
pub struct NoteAddedV1 {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "comment_added", version = 1, renamed_from = NoteAddedV1)]
pub struct CommentAdded {
    pub text: String,
}

impl From<NoteAddedV1> for CommentAdded {
    fn from(v1: NoteAddedV1) -> Self {
        CommentAdded { text: v1.text }
    }
}

// ---- a semantic change with the same shape: discount_applied v1 (percent) -> v2 (basis points)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "discount_applied", version = 1)]
pub struct DiscountAppliedV1 {
    pub rate: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "discount_applied", version = 2, upcast_from = DiscountAppliedV1)]
pub struct DiscountApplied {
    /// In basis points since v2 (v1 stored whole percent).
    pub rate: u32,
}

impl From<DiscountAppliedV1> for DiscountApplied {
    fn from(v1: DiscountAppliedV1) -> Self {
        DiscountApplied {
            rate: v1.rate * 100,
        }
    }
}

// ---- the stream --------------------------------------------------------------------------

/// The customer stream today. `newsletter_opted_in` was retired: its stored events decode to
/// nothing and never reach the aggregate.
#[derive(Debug, Clone, PartialEq, EventEnum)]
#[event_enum(split(DetailsChangedV1), retired("newsletter_opted_in"))]
pub enum CustomerEvent {
    Registered(Registered),
    OrderPlaced(OrderPlaced),
    ItemAdded(ItemAdded),
    PaymentReceived(PaymentReceived),
    CreditAdjusted(CreditAdjusted),
    TierSet(TierSet),
    NameChanged(NameChanged),
    AddressChanged(AddressChanged),
    CommentAdded(CommentAdded),
    DiscountApplied(DiscountApplied),
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Customer)]
pub struct Register {
    #[id]
    pub customer: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("customer error")]
pub struct CustomerError;

/// Everything the ledger replays into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    pub name: String,
    pub email: Option<String>,
    pub address: String,
    pub orders: Vec<(String, i64, String)>,
    pub items: Vec<(String, u32)>,
    pub paid: i64,
    pub credit: i64,
    pub level: u8,
    pub comments: Vec<String>,
    pub discount_bp: u32,
}

#[aggregate(name = "customer", id = String, events = CustomerEvent, error = CustomerError)]
impl Customer {
    #[command(create)]
    fn register(&self, cmd: Register) -> Result<Registered, CustomerError> {
        Ok(Registered {
            name: cmd.name,
            email: None,
        })
    }

    #[apply]
    fn registered(&mut self, e: &Registered) {
        self.name = e.name.clone();
        self.email = e.email.clone();
    }
    #[apply]
    fn order_placed(&mut self, e: &OrderPlaced) {
        self.orders
            .push((e.order.clone(), e.amount, e.currency.clone()));
    }
    #[apply]
    fn item_added(&mut self, e: &ItemAdded) {
        self.items.push((e.sku.clone(), e.qty));
    }
    #[apply]
    fn payment_received(&mut self, e: &PaymentReceived) {
        self.paid += e.amount;
    }
    #[apply]
    fn credit_adjusted(&mut self, e: &CreditAdjusted) {
        self.credit += e.delta;
    }
    #[apply]
    fn tier_set(&mut self, e: &TierSet) {
        self.level = e.level;
    }
    #[apply]
    fn name_changed(&mut self, e: &NameChanged) {
        self.name = e.name.clone();
    }
    #[apply]
    fn address_changed(&mut self, e: &AddressChanged) {
        self.address = e.address.clone();
    }
    #[apply]
    fn comment_added(&mut self, e: &CommentAdded) {
        self.comments.push(e.text.clone());
    }
    #[apply]
    fn discount_applied(&mut self, e: &DiscountApplied) {
        self.discount_bp = e.rate;
    }
}
