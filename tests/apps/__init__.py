"""Small applications that the framework tests run for real."""
