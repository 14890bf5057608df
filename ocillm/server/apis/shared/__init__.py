"""What the APIs share: one translation into the native requests, one reading of the native
answers, and one Server-Sent-Events response."""
