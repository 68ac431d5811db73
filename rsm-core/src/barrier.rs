//! (being written by the API-complete work)
