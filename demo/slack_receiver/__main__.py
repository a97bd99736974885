from demo.slack_receiver.receiver import main

main()
