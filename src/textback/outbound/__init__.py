"""Messages textback sends on its own: through Twilio's REST API, recorded in the database."""
