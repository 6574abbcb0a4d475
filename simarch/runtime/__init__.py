"""Stage 2, the runtime pieces every kind is built from: worker pools, instance pickers,
network links, the call record, the shared request path, resilience and fault injection."""
