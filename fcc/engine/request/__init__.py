"""What a request is, read once at the door: its features, and the conditions documents put on them."""
