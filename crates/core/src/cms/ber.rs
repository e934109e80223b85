//! Streaming BER reader.
