"""What each fcc command computes, as plain data; fcc.cli renders it."""
