"""Transports that carry rpc messages: WebSocket server and client, the RPyC bridge."""
