//! TODO(helper): testkit
