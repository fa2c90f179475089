//! TODO(helper): repository
