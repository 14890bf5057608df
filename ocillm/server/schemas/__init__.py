"""Wire schemas: field for field what Ollama's (and OpenAI's) clients send and receive."""
