"""Built-in exporters: each module is a plugin, registered through the entry points like a third party's."""
