"""Built-in resolvers. Each module is a pluggy plugin exactly like a third-party one."""
