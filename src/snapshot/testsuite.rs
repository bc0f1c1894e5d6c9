//! The conformance suite every driver must pass (filled in by the copy-driver work).
