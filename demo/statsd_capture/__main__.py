from demo.statsd_capture.capture import main

main()
