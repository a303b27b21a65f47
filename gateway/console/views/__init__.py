"""The console's pages, one module per part; each adds its routes to ``console.bp``."""
