//! The query side: typed queries answered by read models.

/// `Self` answers the query `Q`: implemented for each `#[query]` method of a `#[projection]`,
/// and by the read-model stores for the projections they hold.
///
/// A query is any type (usually a small struct of parameters); the answer's type is the
/// method's return type, so a caller writes `model.query(HighValue { min: 100_000 })` and gets
/// exactly what the method returns.
#[diagnostic::on_unimplemented(
    message = "the read model `{Self}` does not answer the query `{Q}`",
    label = "no `#[query]` method takes `{Q}`",
    note = "add `#[query] fn ...(&self, query: {Q}) -> Answer` to the `#[projection]` impl of the read model"
)]
pub trait Answers<Q> {
    /// The answer.
    type Output;

    /// Answers `query` from the read model's current state.
    fn answer(&self, query: Q) -> Self::Output;
}
