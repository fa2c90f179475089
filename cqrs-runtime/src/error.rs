//! TODO(helper): error
