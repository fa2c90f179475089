//! TODO(helper): envelope
