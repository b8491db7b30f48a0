"""State: what fcc records and counts about the requests it served."""
