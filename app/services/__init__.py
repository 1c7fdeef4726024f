"""Services own transactions and row locks; they return plain values, never ORM objects."""
