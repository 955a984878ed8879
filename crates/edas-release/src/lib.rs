//! edas-release (in progress).
