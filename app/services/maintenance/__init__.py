"""Work outside requests: purging dead rows, the development demo."""
