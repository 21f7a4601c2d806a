package dev.phonepipeline.demo.core;

/** A bundle whose metadata.json does not have the phone-pipeline/bundle/1 shape; the message names the key. */
public class BundleFormatException extends Exception {
    private static final long serialVersionUID = 1L;

    public BundleFormatException(String message) {
        super(message);
    }
}
