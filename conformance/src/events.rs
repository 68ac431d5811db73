//! (being moved from tests/)

use crate::Harness;

crate::table! {}
