"""The recurrent encoder-decoder and its training loop (torch; not used by the service)."""
