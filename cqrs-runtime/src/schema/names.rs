//! [`NameSet`]: the wire names an event answers to, built in `const` context. Reachable from
//! outside the crate only through `__private` (generated code names it; users never need to).

/// A small set of wire names known at compile time: the names a current event answers to
/// (its own and those it was renamed from). Built in `const` context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameSet {
    names: [&'static str; NameSet::CAPACITY],
    len: usize,
}

impl NameSet {
    /// The most names one event's history may use.
    pub const CAPACITY: usize = 16;

    /// The empty set.
    pub const EMPTY: NameSet = NameSet {
        names: [""; NameSet::CAPACITY],
        len: 0,
    };

    /// This set plus `name` (a no-op if present). Panics at compile time past the capacity.
    pub const fn with(self, name: &'static str) -> NameSet {
        if self.contains(name) {
            return self;
        }
        assert!(
            self.len < NameSet::CAPACITY,
            "an event's history uses more than 16 wire names"
        );
        let mut names = self.names;
        names[self.len] = name;
        NameSet {
            names,
            len: self.len + 1,
        }
    }

    /// The union of two sets.
    pub const fn union(self, other: NameSet) -> NameSet {
        let mut out = self;
        let mut i = 0;
        while i < other.len {
            out = out.with(other.names[i]);
            i += 1;
        }
        out
    }

    /// Whether `name` is in the set, at run time: `==` on `str` (a length check and a `memcmp`)
    /// over the names in order, the current name first. What decoding uses; [`NameSet::contains`]
    /// is the `const` twin for compile-time checks.
    #[inline]
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().take(self.len).any(|n| *n == name)
    }

    /// Whether `name` is in the set.
    pub const fn contains(&self, name: &str) -> bool {
        let mut i = 0;
        while i < self.len {
            if str_eq(self.names[i], name) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// How many names the set holds.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no name.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the two sets share a name.
    pub const fn intersects(&self, other: &NameSet) -> bool {
        let mut i = 0;
        while i < other.len {
            if self.contains(other.names[i]) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The names, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names[..self.len].iter().copied()
    }
}

/// `const` string equality (for wire-name checks in `const` items).
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
