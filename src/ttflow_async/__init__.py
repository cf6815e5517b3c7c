"""ttflow-async: an asyncio-native durable workflow runtime."""
