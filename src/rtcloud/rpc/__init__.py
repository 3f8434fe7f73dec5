"""Wire protocol for remote calls: messages, codec, connection state and dispatch (Sans-I/O)."""
