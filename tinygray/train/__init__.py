"""Training: the one Keras loop, the teacher, the students, the Keras backend and tf.distribute strategy."""
