"""Pure translation: requests, stream chunks and errors between the two wire protocols. No I/O."""
