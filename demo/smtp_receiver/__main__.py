from demo.smtp_receiver.receiver import main

main()
