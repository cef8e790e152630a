"""Pure status computation: spec plus observed children in, status and conditions out."""
