"""Coverage-guided fuzzing targets (atheris): `make fuzz`, and a short run in the tests."""
