//! Shapes of serialized types: fingerprints that change when the serde shape changes.
//!
//! Event versions and snapshot states are frozen by their shape fingerprint: a change of
//! field names, types, serde renames or defaults, or of a nested type's shape, changes it.

/// A type whose serialized shape has a stable fingerprint.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no shape fingerprint",
    label = "add `#[derive(Shape)]` to `{Self}` (or implement `Shape` for it)",
    note = "event fields and snapshot states must describe their serialized shape, so that a change to it is caught"
)]
pub trait Shape {
    /// The fingerprint of the serialized shape (stable across builds and platforms).
    const FINGERPRINT: u64;
}
