"""The HTTP side: the JSON API routes and running the app under uvicorn."""
