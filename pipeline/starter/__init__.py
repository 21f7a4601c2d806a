"""`phone-pipeline init`: a starter recipe inferred from a user's model file and data, validated by loading it."""
