"""The imperative shell: Kafka I/O around the pure core (Faust apps in `app`, plain producers in `produce`)."""
