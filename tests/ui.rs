//! Compile-fail cases: every invariant a macro enforces, one per file, with a reviewed `.stderr`.
//! Regenerate with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
